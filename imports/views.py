"""The import pages (Admins): upload, choose columns, the dry run's result, apply or cancel,
the progress of the background work."""

import csv

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.paginator import Paginator
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.defaultfilters import filesizeformat
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from exports.columns import make_inert
from imports import formats, selectors, services, tasks
from imports.forms import MappingForm, UploadForm
from imports.models import ImportFormat, ImportJob, ImportStatus
from imports.reading import UnreadableFile
from imports.rows import REASONS
from imports.uploads import SizeLimitHandler

PERMISSION = "imports.import_data"


def reason_text(code: str, value: str) -> str:
    template = REASONS.get(code)
    return str(template) % {"value": value} if template else code


def _too_large_message() -> str:
    return _(
        "The file is larger than the %(limit)s an import accepts. Split it into smaller "
        "files (the rows are matched by email, so the parts can be imported one after the "
        "other)."
    ) % {"limit": filesizeformat(services.max_bytes())}


@csrf_exempt  # checked below, once the size limit is in place (the check reads the body)
@require_http_methods(["GET", "POST"])
@permission_required(PERMISSION, raise_exception=True)
def job_list(request):
    """Import customers: the upload form and the recent imports."""
    handler = None
    if request.method == "POST":
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > services.max_bytes() + 1024 * 1024:
            return _render_list(request, UploadForm(), error=_too_large_message(), status=413)
        handler = SizeLimitHandler(request, limit=services.max_bytes())
        request.upload_handlers.insert(0, handler)
    return _job_list(request, handler)


@csrf_protect
def _job_list(request, handler):
    if request.method != "POST":
        return _render_list(request, UploadForm())
    form = UploadForm(request.POST, request.FILES)
    if handler is not None and handler.exceeded:
        return _render_list(request, form, error=_too_large_message(), status=413)
    if not form.is_valid():
        return _render_list(request, form, status=400)
    try:
        job = services.import_upload(
            upload=form.cleaned_data["file"], kind=form.cleaned_data["kind"], actor=request.user
        )
    except services.TooLarge:
        return _render_list(request, form, error=_too_large_message(), status=413)
    except UnreadableFile as error:
        message = str(error) or _("The file has no header row.")
        return _render_list(request, form, error=message, status=400)
    if job.status == ImportStatus.CHECKING:
        tasks.check_enqueue(job)
        return redirect(job)
    return redirect("imports:job-mapping", pk=job.pk)


def _render_list(request, form, *, error="", status=200):
    return render(
        request,
        "imports/job_list.html",
        {
            "form": form,
            "error": error,
            "jobs": selectors.import_job_list(),
            "max_size": services.max_bytes(),
        },
        status=status,
    )


@require_safe
@permission_required(PERMISSION, raise_exception=True)
def job_detail(request, pk: int):
    """An import: progress, the dry run's counts, refused rows and sample of updates."""
    job = get_object_or_404(ImportJob.objects.select_related("created_by", "applied_by"), pk=pk)
    refused = Paginator(selectors.import_refused_rows(job), selectors.REFUSED_PAGE)
    page = refused.get_page(request.GET.get("page"))
    labels = formats.fields_of(job.kind)
    noted = None
    if job.counts.get(services.NOTED) and not job.is_running:
        # Only a dry run that found some looks for them (no index serves this filter).
        noted = Paginator(selectors.import_noted_rows(job), selectors.REFUSED_PAGE)
        noted = noted.get_page(request.GET.get("notes"))
    context = {
        "job": job,
        "stale": services.is_stale(job),
        "refused_page": page,
        "refused": [(row.line, [reason_text(*r) for r in row.reasons]) for row in page],
        "noted_page": noted,
        "noted": [
            (row.line, row.key, [reason_text(*r) for r in row.reasons]) for row in noted or ()
        ],
        "updates": [
            {
                "line": row.line,
                "key": row.key,
                "changes": [
                    (_label(name, labels), before, after)
                    for name, (before, after) in row.changes.items()
                ],
            }
            for row in selectors.import_sample_updates(job)
        ]
        if job.status == ImportStatus.CHECKED
        else [],
        "columns": [
            (header, str(labels[f]) if f in labels else "")
            for header, f in zip(job.headers, job.mapping, strict=False)
        ],
    }
    if request.headers.get("HX-Request"):
        return render(request, "imports/job_detail.html#progress", context)
    return render(request, "imports/job_detail.html", context)


def _label(name: str, labels: dict) -> str:
    extra = {
        "default_billing_address": _("Default billing address"),
        "default_shipping_address": _("Default shipping address"),
        "email_consent": _("Accepts email marketing"),
        "sms_consent": _("Accepts SMS marketing"),
    }
    return str(labels.get(name) or extra.get(name) or name)


@require_http_methods(["GET", "POST"])
@permission_required(PERMISSION, raise_exception=True)
def job_mapping(request, pk: int):
    """Choose which field each column of the file fills."""
    job = get_object_or_404(ImportJob, pk=pk)
    form = MappingForm(request.POST or None, job=job)
    if request.method == "POST" and form.is_valid():
        try:
            job = services.import_set_mapping(
                job=job,
                mapping=form.cleaned_data["mapping"],
                date_order=form.cleaned_data["date_order"],
            )
        except services.NotAllowed:
            messages.error(request, _("This import can no longer change its columns."))
            return redirect(job)
        tasks.check_enqueue(job)
        return redirect(job)
    status = 400 if request.method == "POST" else 200
    # A recognized file waits here only when its dates read either way (services).
    dates_unclear = job.format not in ("", ImportFormat.MANUAL) and not services.missing_fields(job)
    context = {"job": job, "form": form, "dates_unclear": dates_unclear}
    return render(request, "imports/job_mapping.html", context, status=status)


@require_POST
@permission_required(PERMISSION, raise_exception=True)
def job_apply(request, pk: int):
    """Apply a checked import in the background."""
    job = get_object_or_404(ImportJob, pk=pk)
    try:
        job = services.import_start_apply(job=job, actor=request.user)
    except services.NotAllowed:
        messages.error(request, _("This import cannot be applied now."))
        return redirect(job)
    tasks.apply_enqueue(job)
    messages.success(request, _("The import is being applied."))
    return redirect(job)


@require_POST
@permission_required(PERMISSION, raise_exception=True)
def job_cancel(request, pk: int):
    """Drop an import that was not applied."""
    job = get_object_or_404(ImportJob, pk=pk)
    try:
        services.import_cancel(job=job)
    except services.NotAllowed:
        messages.error(request, _("This import cannot be cancelled now."))
        return redirect(job)
    messages.success(request, _("The import is cancelled; nothing was written."))
    return redirect("imports:job-list")


@require_POST
@permission_required(PERMISSION, raise_exception=True)
def job_resume(request, pk: int):
    """Start again background work that stopped: the dry run from the top, applying from
    the first row not applied."""
    job = get_object_or_404(ImportJob, pk=pk)
    try:
        if job.status != ImportStatus.FAILED and not services.is_stale(job):
            raise services.NotAllowed()
        if job.checked_at is None:
            job = services.import_restart_check(job=job)
            tasks.check_enqueue(job)
        else:
            job = services.import_start_apply(job=job, actor=request.user)
            tasks.apply_enqueue(job)
    except services.NotAllowed:
        messages.error(request, _("This import has nothing to resume."))
        return redirect(job)
    messages.success(request, _("The import resumes."))
    return redirect(job)


class _Echo:
    def write(self, value):
        return value


@require_safe
@permission_required(PERMISSION, raise_exception=True)
def job_refused_csv(request, pk: int) -> HttpResponse:
    """Every refused row with its line and reasons, as a CSV file."""
    job = get_object_or_404(ImportJob, pk=pk)
    writer = csv.writer(_Echo())

    def lines():
        yield writer.writerow([_("Line"), _("Reason")])
        for row in selectors.import_refused_rows(job).iterator(chunk_size=2000):
            yield writer.writerow(
                [row.line, make_inert("; ".join(reason_text(*r) for r in row.reasons))]
            )

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="import-{job.pk}-refused.csv"'
    return response
