# Dates as the back office writes them in French: 14 nov. 2026, 14 nov. 2026 09:30.
SHORT_DATE_FORMAT = "j N Y"
SHORT_DATETIME_FORMAT = "j N Y H:i"
