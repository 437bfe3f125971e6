// Package apispec embeds api/openapi.yaml, the HTTP contract, so that the
// server can publish the exact spec it was generated from.
package apispec

import _ "embed"

// OpenAPI is api/openapi.yaml.
//
//go:embed openapi.yaml
var OpenAPI []byte
