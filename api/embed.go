// Package apispec embeds the HTTP contract: api/openapi.yaml, the API, which
// the server publishes as it was generated from, and api/site.yaml, the
// routes served beside it that no API client calls.
package apispec

import _ "embed"

// OpenAPI is api/openapi.yaml.
//
//go:embed openapi.yaml
var OpenAPI []byte

// Site is api/site.yaml: the pages, their assets, Swagger UI, this contract,
// metrics and Stripe's webhook.
//
//go:embed site.yaml
var Site []byte
