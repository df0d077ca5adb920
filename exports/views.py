"""Exports of the Clients and Leads tabs: a CSV streamed at once, or an XLSX file built in
the background, followed on its page and downloaded by the user who asked for it."""

from django.conf import settings
from django.contrib.auth.mixins import PermissionRequiredMixin
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views import View

from clients.selection import selected_ids
from exports import services, tasks
from exports.forms import ExportForm
from exports.models import ExportFormat, ExportScope, ExportStatus
from exports.selectors import user_exports
from privacy.models import AccessAction
from privacy.services import access_record

VIEW_CUSTOMERS = "clients.view_customer"
TAB_URLS = {"clients": "clients:client-list", "leads": "clients:lead-list"}


class ExportCreateView(PermissionRequiredMixin, View):
    """POST from the list's Export form."""

    permission_required = VIEW_CUSTOMERS
    raise_exception = True

    def post(self, request):
        form = ExportForm(request.POST)
        if not form.is_valid():
            return self.refuse(request, form.errors_text())
        data = form.cleaned_data
        ids = []
        if data["scope"] == ExportScope.SELECTED:
            ids = selected_ids(request.session, data["tab"])
        try:
            export = tasks.export_submit(
                user=request.user,
                tab=data["tab"],
                scope=data["scope"],
                query=data["query"],
                sort=data["sort"],
                ids=ids,
                file_format=data["file_format"],
                language=request.LANGUAGE_CODE,
            )
        except ValueError as exc:
            return self.refuse(request, str(exc), tab=data["tab"])
        # The access log (privacy/) keeps who exported what, from where, for a year.
        access_record(
            request, action=AccessAction.EXPORT, detail={"export": export.pk, "tab": export.tab}
        )
        if export.file_format == ExportFormat.XLSX:
            return redirect(export)
        response = StreamingHttpResponse(
            services.export_stream_csv(export), content_type="text/csv; charset=utf-8"
        )
        response["Content-Disposition"] = (
            f'attachment; filename="{services.export_file_name(export)}"'
        )
        return response

    def refuse(self, request, message: str, tab: str = "clients"):
        return render(
            request,
            "exports/export_refused.html",
            {"message": message, "back_url": TAB_URLS.get(tab, TAB_URLS["clients"])},
            status=400,
        )


class ExportListView(PermissionRequiredMixin, View):
    """The user's own exports, newest first, with their files while they are kept."""

    permission_required = VIEW_CUSTOMERS
    raise_exception = True

    def get(self, request):
        page = Paginator(user_exports(user=request.user), 25).get_page(request.GET.get("page"))
        context = {"page": page, "retention_hours": settings.EXPORT_RETENTION_HOURS}
        return render(request, "exports/export_list.html", context)


class ExportDetailView(PermissionRequiredMixin, View):
    """An XLSX export's progress (polled by htmx while it is built), then its download link."""

    permission_required = VIEW_CUSTOMERS
    raise_exception = True

    def get(self, request, pk: int):
        export = get_object_or_404(user_exports(user=request.user), pk=pk)
        context = {"export": export}
        if request.headers.get("HX-Request"):
            return render(request, "exports/export_detail.html#progress", context)
        return render(request, "exports/export_detail.html", context)


class ExportDownloadView(PermissionRequiredMixin, View):
    """The XLSX file, to the user who asked for it only, until it expires."""

    permission_required = VIEW_CUSTOMERS
    raise_exception = True

    def get(self, request, pk: int):
        export = get_object_or_404(user_exports(user=request.user), pk=pk)
        if (
            export.status != ExportStatus.DONE
            or not export.file
            or (export.expires_at and export.expires_at <= timezone.now())
        ):
            return render(request, "exports/export_detail.html", {"export": export}, status=410)
        storage = services.export_storage()
        try:
            handle = storage.open(export.file, "rb")
        except FileNotFoundError:
            raise Http404 from None
        return FileResponse(
            handle,
            as_attachment=True,
            filename=services.export_file_name(export),
            content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        )
