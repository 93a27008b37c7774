// Swagger UI for one endpoint's swagger, as rewritten by amlc (servers point at the local proxy).
window.onload = function () {
  window.ui = SwaggerUIBundle({
    url: "swagger.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    displayRequestDuration: true,
    defaultModelsExpandDepth: 0,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    // The proxy forwards only requests carrying this header: another site's <img>, <form> or
    // simple fetch cannot add it, and a cross-origin fetch that tries is refused at preflight.
    requestInterceptor: function (request) {
      request.headers["X-Amlc-Proxy"] = "swagger-ui";
      return request;
    },
  });
};
