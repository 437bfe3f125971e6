package database

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRedactHidesEverySecretOfAConnectionString(t *testing.T) {
	t.Parallel()
	for name, c := range map[string]struct{ in, want string }{
		"URLUserInfo": {
			"postgres://slotpay:hunter2@db.internal:5432/slotpay?sslmode=verify-full",
			"postgres://slotpay:xxxxx@db.internal:5432/slotpay?sslmode=verify-full",
		},
		"URLQueryPassword": {
			"postgres://slotpay@db.internal/slotpay?password=hunter2&sslmode=require",
			"postgres://slotpay@db.internal/slotpay?password=xxxxx&sslmode=require",
		},
		"URLKeyMaterialAndUnknownParameters": {
			"postgresql://db/slotpay?sslpassword=hunter2&sslkey=/secrets/hunter2.key&sslcert=/c.pem&passfile=/p&x_new=hunter2&application_name=slotpay",
			"postgresql://db/slotpay?application_name=slotpay&passfile=xxxxx&sslcert=xxxxx&sslkey=xxxxx&sslpassword=xxxxx&x_new=xxxxx",
		},
		"URLWithoutSecrets": {
			"postgres://postgres@127.0.0.1:5432/slotpay?sslmode=disable",
			"postgres://postgres@127.0.0.1:5432/slotpay?sslmode=disable",
		},
		"KeywordValue": {
			"host=db.internal user=slotpay password=hunter2 dbname=slotpay sslpassword=hunter2 sslmode=require",
			"host=db.internal user=slotpay password=xxxxx dbname=slotpay sslpassword=xxxxx sslmode=require",
		},
		"KeywordValueQuoted": {
			`host=db password='hunter2 with spaces \' and a quote' sslkey = '/k/hunter2.key' application_name='slot pay'`,
			`host=db password=xxxxx sslkey=xxxxx application_name='slot pay'`,
		},
		"KeywordValueUnterminatedQuote": {
			`host=db password='hunter2`,
			"(unreadable connection string)",
		},
		"NotAConnectionString": {"hunter2", "(unreadable connection string)"},
		"BrokenURL":            {"postgres://u:hunter2@db:notaport/x%zz", "(unreadable connection string)"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got := Redact(c.in)
			require.Equal(t, c.want, got)
			require.NotContains(t, got, "hunter2")
		})
	}
}
