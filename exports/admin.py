from django.contrib import admin

from exports.models import Export


@admin.register(Export)
class ExportAdmin(admin.ModelAdmin):
    """The exports audit trail, read-only: who exported which customers, when, how many."""

    list_display = ("requested_at", "requested_by", "tab", "scope", "file_format", "rows", "status")
    list_filter = ("status", "file_format", "tab", "scope")
    date_hierarchy = "requested_at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
