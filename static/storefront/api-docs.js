// The storefront API's documentation page: Swagger UI over the generated OpenAPI schema.
// A file of its own (not an inline script): the Content Security Policy allows no inline code.
(function () {
  "use strict";
  var root = document.getElementById("swagger-ui");
  window.SwaggerUIBundle({
    url: root.getAttribute("data-schema-url"),
    domNode: root,
    deepLinking: true,
    presets: [window.SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    // "Try it out" sends real calls with the key typed in "Authorize": keep it, but never
    // remember the key in the browser.
    persistAuthorization: false,
  });
})();
