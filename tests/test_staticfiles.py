"""The production static files storage (backoffice/staticfiles.py)."""

import json

from backoffice.staticfiles import ManifestStaticFilesStorage


def test_urls_come_from_the_manifest_and_are_remembered(tmp_path, settings):
    settings.STATIC_URL = "/static/"
    (tmp_path / "staticfiles.json").write_text(
        json.dumps(
            {
                "paths": {"css/app.css": "css/app.0123456789ab.css"},
                "version": "1.1",
                "hash": "0123456789ab",
            }
        )
    )
    storage = ManifestStaticFilesStorage(location=tmp_path, base_url="/static/")
    assert storage.url("css/app.css") == "/static/css/app.0123456789ab.css"
    # Remembered: the manifest is read once per process.
    storage.hashed_files["css/app.css"] = "css/app.ffffffffffff.css"
    assert storage.url("css/app.css") == "/static/css/app.0123456789ab.css"
    assert storage.url("css/app.css", force=True) == "/static/css/app.ffffffffffff.css"
