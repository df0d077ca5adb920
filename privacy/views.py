"""The privacy pages: erasure, consents, data archives, the retention sweep, the access log.

Every page but the consent form needs `privacy.manage_privacy` (Admins): Viewers and Staff
get a 403.
"""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.mixins import PermissionRequiredMixin
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.formats import date_format
from django.utils.timezone import localtime
from django.utils.translation import gettext as _
from django.views import View
from django_filters.views import FilterView
from django_tables2 import SingleTableMixin

from clients.models import Customer
from privacy.filters import AccessLogFilter
from privacy.forms import ConsentForm, ErasureForm, RetentionConfirmForm
from privacy.models import AccessAction, DataArchive, ErasureRequest
from privacy.selectors import access_log_entries, planned_erasures
from privacy.services import (
    PrivacyError,
    access_record,
    archive_take,
    consent_record,
    erasure_cancel,
    retention_cutoff,
    retention_preview,
)
from privacy.tables import AccessLogTable
from privacy.tasks import archive_submit, erasure_submit, retention_submit

MANAGE = "privacy.manage_privacy"


class ErasureCreateView(PermissionRequiredMixin, View):
    """ "Erase this customer": the reason, then a grace period before the erasure."""

    permission_required = MANAGE
    template_name = "privacy/erasure_form.html"

    def render_form(self, request, customer, form, status=200):
        context = {
            "customer": customer,
            "form": form,
            "grace_days": settings.PRIVACY_ERASURE_GRACE_DAYS,
            "keep_billing": settings.PRIVACY_KEEP_BILLING_SNAPSHOT,
        }
        return render(request, self.template_name, context, status=status)

    def get(self, request, pk: int):
        customer = get_object_or_404(Customer, pk=pk, erased_at=None)
        return self.render_form(request, customer, ErasureForm())

    def post(self, request, pk: int):
        customer = get_object_or_404(Customer, pk=pk, erased_at=None)
        form = ErasureForm(request.POST)
        if form.is_valid():
            try:
                erasure = erasure_submit(
                    customer=customer, actor=request.user, reason=form.cleaned_data["reason"]
                )
            except PrivacyError as exc:
                form.add_error(None, str(exc))
            else:
                access_record(
                    request,
                    action=AccessAction.ERASURE_REQUEST,
                    customer_id=customer.pk,
                    detail={"erasure": erasure.pk},
                )
                messages.success(
                    request,
                    _("The customer's data will be erased on %(date)s unless cancelled before.")
                    % {"date": date_format(localtime(erasure.due_at), "SHORT_DATE_FORMAT")},
                )
                return redirect(customer)
        return self.render_form(request, customer, form, status=400)


class ErasureCancelView(PermissionRequiredMixin, View):
    permission_required = MANAGE

    def post(self, request, pk: int):
        erasure = get_object_or_404(ErasureRequest.objects.select_related("customer"), pk=pk)
        try:
            erasure_cancel(erasure=erasure, actor=request.user)
        except PrivacyError as exc:
            messages.error(request, str(exc))
        else:
            access_record(
                request,
                action=AccessAction.ERASURE_CANCEL,
                customer_id=erasure.customer_id,
                detail={"erasure": erasure.pk},
            )
            messages.success(request, _("The erasure is cancelled."))
        return redirect(erasure.customer)


AUDIT_PER_PAGE = 50


class _AuditPaginator(Paginator):
    """Pages of AUDIT_PER_PAGE entries, whatever `per_page` django-tables2 read from the
    query string (a negative or zero one was a 500, a huge one the whole log at once)."""

    def __init__(self, object_list, per_page, *args, **kwargs):
        super().__init__(object_list, AUDIT_PER_PAGE, *args, **kwargs)


class AccessLogView(PermissionRequiredMixin, SingleTableMixin, FilterView):
    """/audit/: who read, exported or changed what about customers, newest first."""

    permission_required = MANAGE
    filterset_class = AccessLogFilter
    table_class = AccessLogTable
    table_pagination = {"per_page": AUDIT_PER_PAGE, "paginator_class": _AuditPaginator}
    template_name = "privacy/audit.html"

    def get_queryset(self):
        return access_log_entries()

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["retention_days"] = settings.PRIVACY_ACCESS_LOG_DAYS
        return context

    def get(self, request, *args, **kwargs):
        # Rendered now, so that the page does not list its own entry.
        response = super().get(request, *args, **kwargs).render()
        filters = self.filterset.form.cleaned_data if self.filterset.is_valid() else {}
        access_record(
            request,
            action=AccessAction.AUDIT_VIEW,
            customer_id=filters.get("customer"),
            detail={"user": filters["user"]} if filters.get("user") else {},
        )
        return response


class OverviewView(PermissionRequiredMixin, View):
    """/privacy/: the planned erasures, the retention sweep, the access log."""

    permission_required = MANAGE
    template_name = "privacy/overview.html"

    def get(self, request):
        return self.render_page(request, RetentionConfirmForm())

    def render_page(self, request, form, status=200):
        cutoff = retention_cutoff()
        preview = retention_preview(cutoff=cutoff)
        access_record(
            request,
            action=AccessAction.RETENTION_PREVIEW,
            detail={"leads": preview["leads"], "clients": preview["clients"]},
        )
        context = {
            "erasures": planned_erasures(),
            "grace_days": settings.PRIVACY_ERASURE_GRACE_DAYS,
            "retention": preview,
            "retention_days": settings.PRIVACY_RETENTION_DAYS,
            "retention_auto": settings.PRIVACY_RETENTION_AUTO,
            "form": form,
        }
        return render(request, self.template_name, context, status=status)

    def post(self, request):
        """Confirm the retention sweep previewed: the worker erases those customers."""
        form = RetentionConfirmForm(request.POST, latest=retention_cutoff())
        if not form.is_valid():
            return self.render_page(request, form, status=400)
        cutoff = form.cleaned_data["cutoff"]
        preview = retention_preview(cutoff=cutoff)
        if not preview["leads"] and not preview["clients"]:
            form.add_error(
                None, _("Nobody is past the retention period: there is nothing to erase.")
            )
            return self.render_page(request, form, status=400)
        if (preview["leads"], preview["clients"]) != (
            form.cleaned_data["leads"],
            form.cleaned_data["clients"],
        ):
            # Only what the Admin saw and confirmed is erased.
            form.add_error(
                "confirm", _("The counts changed since the page was shown: check them again.")
            )
            return self.render_page(request, form, status=400)
        retention_submit(cutoff=cutoff)
        access_record(
            request,
            action=AccessAction.RETENTION_SWEEP,
            detail={"leads": preview["leads"], "clients": preview["clients"]},
        )
        messages.success(
            request,
            _("The retention sweep is running: %(leads)d leads and %(clients)d clients.")
            % {"leads": preview["leads"], "clients": preview["clients"]},
        )
        return redirect("privacy:overview")


class ConsentCreateView(PermissionRequiredMixin, View):
    """Record an email or SMS consent the customer gave or withdrew (Staff and Admins)."""

    permission_required = ("clients.view_customer", "privacy.add_consentrecord")
    template_name = "privacy/consent_form.html"

    def get(self, request, pk: int):
        customer = get_object_or_404(Customer, pk=pk, erased_at=None)
        return render(request, self.template_name, {"customer": customer, "form": ConsentForm()})

    def post(self, request, pk: int):
        customer = get_object_or_404(Customer, pk=pk, erased_at=None)
        form = ConsentForm(request.POST)
        if form.is_valid():
            try:
                record = consent_record(customer=customer, actor=request.user, **form.cleaned_data)
            except PrivacyError as exc:
                form.add_error(None, str(exc))
            else:
                access_record(
                    request,
                    action=AccessAction.CONSENT_RECORD,
                    customer_id=customer.pk,
                    detail={"consent": record.pk},
                )
                messages.success(request, _("The consent is recorded."))
                return redirect(f"{customer.get_absolute_url()}#privacy")
        context = {"customer": customer, "form": form}
        return render(request, self.template_name, context, status=400)


class ArchiveCreateView(PermissionRequiredMixin, View):
    """ "Download this customer's data": built now, or by the worker for a big customer."""

    permission_required = MANAGE

    def post(self, request, pk: int):
        customer = get_object_or_404(Customer, pk=pk, erased_at=None)
        archive = archive_submit(customer=customer, actor=request.user)
        access_record(
            request,
            action=AccessAction.ARCHIVE_REQUEST,
            customer_id=customer.pk,
            detail={"archive": archive.pk},
        )
        return redirect("privacy:archive-detail", pk=archive.pk)


class ArchiveDetailView(PermissionRequiredMixin, View):
    """The archive's state for its requester, with the download button once it is ready."""

    permission_required = MANAGE
    template_name = "privacy/archive_detail.html"

    def get(self, request, pk: int):
        archive = get_object_or_404(
            DataArchive.objects.select_related("customer").defer("content"),
            pk=pk,
            requested_by=request.user,
        )
        return render(request, self.template_name, {"archive": archive})


class ArchiveDownloadView(PermissionRequiredMixin, View):
    """The ZIP, once, for the Admin who requested it, until it expires."""

    permission_required = MANAGE

    def post(self, request, pk: int):
        try:
            content = archive_take(archive_id=pk, actor=request.user)
        except DataArchive.DoesNotExist:
            raise Http404 from None
        except PrivacyError as exc:
            messages.error(request, str(exc))
            return redirect("privacy:archive-detail", pk=pk)
        archive = DataArchive.objects.only("customer_id").get(pk=pk)
        access_record(
            request,
            action=AccessAction.ARCHIVE_DOWNLOAD,
            customer_id=archive.customer_id,
            detail={"archive": pk, "bytes": len(content)},
        )
        response = HttpResponse(content, content_type="application/zip")
        filename = f"customer-{archive.customer_id}-data.zip"
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response
