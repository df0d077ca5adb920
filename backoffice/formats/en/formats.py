# Dates as the back office writes them in English: 14 Nov 2026, 14 Nov 2026 09:30.
SHORT_DATE_FORMAT = "j M Y"
SHORT_DATETIME_FORMAT = "j M Y H:i"
