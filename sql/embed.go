// Package sqlfiles embeds slotpay's goose migrations so that the binary can
// migrate its own database.
package sqlfiles

import "embed"

// Migrations holds the files of sql/migrations, named NNNNN_name.sql.
//
//go:embed migrations/*.sql
var Migrations embed.FS
