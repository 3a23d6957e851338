"""``GET /upload``: the operators' upload page (when ``repository.upload_page`` is on).

One static page: the operator pastes an API key (upload, register and read scopes), picks a
file; the browser asks ``POST /uploads`` for a presigned POST, sends the file straight to the
bucket, registers it with ``POST /images`` and previews it through the tenant's presets. The
key stays in the page (never stored, never in a URL).
"""

from __future__ import annotations

from aiohttp import web

from thumbor_py.repository.build import Repositories
from thumbor_py.repository.http import Handler

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>thumbor-py: upload an image</title>
<style>
 body { font: 15px system-ui, sans-serif; margin: 2em; max-width: 60em; }
 label { display: block; margin: .6em 0; }
 #previews figure { display: inline-block; margin: .5em; vertical-align: top; }
 #status[data-state=error] { color: #b00; }
</style>
</head>
<body>
<h1>Upload an image</h1>
<form id="form">
 <label>API key <input id="key" type="password" autocomplete="off" required></label>
 <label>Image <input id="file" type="file" accept="image/*" required></label>
 <label>Title <input id="title"></label>
 <label>Alt text <input id="alt"></label>
 <label>Tags (comma separated) <input id="tags"></label>
 <button id="send" type="submit">Upload</button>
</form>
<p id="status" data-state="idle"></p>
<pre id="record"></pre>
<div id="previews"></div>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
function say(state, text) { $("status").dataset.state = state; $("status").textContent = text; }
async function call(path, key, body) {
  const response = await fetch(path, {
    method: "POST",
    headers: { "Authorization": "Bearer " + key, "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(path + ": " + response.status + " " + text);
  return JSON.parse(text);
}
function preview(name, url) {
  const figure = document.createElement("figure");
  const img = document.createElement("img");
  img.dataset.preset = name;
  img.alt = name;
  img.src = url;
  const caption = document.createElement("figcaption");
  caption.textContent = name;
  figure.append(img, caption);
  $("previews").append(figure);
}
$("form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const key = $("key").value.trim();
  const file = $("file").files[0];
  $("previews").replaceChildren();
  try {
    say("busy", "asking for an upload permission");
    const permission = await call("/uploads", key, { content_type: file.type });
    say("busy", "uploading to the bucket");
    const form = new FormData();
    for (const [name, value] of Object.entries(permission.fields)) form.append(name, value);
    form.append("file", file);
    const sent = await fetch(permission.url, { method: "POST", body: form });
    if (!sent.ok) throw new Error("bucket: " + sent.status + " " + (await sent.text()));
    say("busy", "registering");
    const tags = $("tags").value.split(",").map((t) => t.trim()).filter(Boolean);
    const record = await call("/images", key, {
      upload_id: permission.upload_id, title: $("title").value || null,
      alt: $("alt").value || null, tags,
    });
    $("record").textContent = JSON.stringify(record, null, 2);
    for (const [name, url] of Object.entries(record.urls.presets)) preview(name, url);
    preview("smart", record.urls.smart);
    say("done", "registered " + record.id);
  } catch (error) {
    say("error", String(error.message || error));
  }
});
</script>
</body>
</html>
"""


def add_route(app: web.Application, repositories: Repositories, fallback: Handler) -> None:
    """Serve the page on hosts whose repository enables it; elsewhere ``/upload`` is the
    image URL it was (``fallback``)."""

    async def upload_page(request: web.Request) -> web.StreamResponse:
        repository = repositories.for_host(request.host)
        if repository is None or not repository.settings.upload_page:
            return await fallback(request)
        return web.Response(
            text=PAGE,
            content_type="text/html",
            headers={
                "Cache-Control": "no-store",
                "Content-Security-Policy": "default-src 'self'; script-src 'unsafe-inline'; "
                "style-src 'unsafe-inline'; connect-src 'self' http: https:; img-src 'self'",
                "Referrer-Policy": "no-referrer",
            },
        )

    app.router.add_get("/upload", upload_page, name="upload_page")
