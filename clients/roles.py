"""The three back-office roles, created as groups by clients/migrations/0002_roles.py.

Viewer reads everything; Staff also edits contact details, addresses and notes; Admin also
sends push campaigns. Views check permissions, never these names; the names are for the
commands that create users.
"""

VIEWER, STAFF, ADMIN = "Viewer", "Staff", "Admin"
ROLES = (VIEWER, STAFF, ADMIN)
