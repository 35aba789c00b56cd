// Boots Swagger UI on /v1/docs. A file of its own (not an inline <script>) so the
// page's Content-Security-Policy can be script-src 'self'.
"use strict";
window.addEventListener("DOMContentLoaded", function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.getAttribute("data-openapi-url"),
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    // The default sends the document's URL to validator.swagger.io: nothing leaves the box.
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
  });
});
