"""Swagger tools for people: fetch, summarise, lint, generate a typed client, serve a UI.

The swagger is *interpreted* in one place only, :mod:`aml_client.schema` (below the client);
the modules here work on top of it and import nothing heavy until used:

- :mod:`~aml_client.swagger.fetch`   a swagger from a file or from the endpoint (HTTP layer);
- :mod:`~aml_client.swagger.summary` routes, auth, convention, columns and output as plain data;
- :mod:`~aml_client.swagger.lint`    the OpenAPI structure and what scoring depends on, with
  JSON paths;
- :mod:`~aml_client.swagger.codegen` the source of a typed pydantic client for one endpoint;
- :mod:`~aml_client.swagger.ui`      a local Swagger UI whose proxy keeps the key off the page.
"""
