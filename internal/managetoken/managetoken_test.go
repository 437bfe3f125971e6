package managetoken_test

import (
	"bytes"
	"encoding/base64"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/slotpay/slotpay/internal/managetoken"
)

func newIssuer(t *testing.T, key string) *managetoken.Issuer {
	t.Helper()
	i, err := managetoken.NewIssuer([]byte(key))
	require.NoError(t, err)
	return i
}

const key = "0123456789abcdef0123456789abcdef"

func TestManageToken_DerivedAgainForTheEmail(t *testing.T) {
	t.Parallel()
	i := newIssuer(t, key)
	id := uuid.New()
	token, secret, err := i.Issue(id)
	require.NoError(t, err)
	require.Equal(t, token, i.Derive(id, secret.Salt), "the e-mail's link carries the token of the 201")
	require.NoError(t, managetoken.Check(token, secret.Hash))
}

func TestManageToken_AtLeast128RandomBits(t *testing.T) {
	t.Parallel()
	i := newIssuer(t, key)
	id := uuid.New()
	a, sa, err := i.Issue(id)
	require.NoError(t, err)
	b, sb, err := i.Issue(id)
	require.NoError(t, err)
	require.NotEqual(t, a, b, "a fresh salt makes a fresh token")
	require.False(t, bytes.Equal(sa.Salt, sb.Salt))
	raw, err := base64.RawURLEncoding.DecodeString(a)
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(raw)*8, 128)
	require.Len(t, sa.Salt, 16)
}

func TestManageToken_StoredOnlyHashed(t *testing.T) {
	t.Parallel()
	token, secret, err := newIssuer(t, key).Issue(uuid.New())
	require.NoError(t, err)
	require.NotContains(t, string(secret.Hash), token)
	require.NotContains(t, string(secret.Salt), token)
}

func TestManageToken_WrongTokensRefused(t *testing.T) {
	t.Parallel()
	i := newIssuer(t, key)
	id := uuid.New()
	token, secret, err := i.Issue(id)
	require.NoError(t, err)
	other, _, err := i.Issue(uuid.New())
	require.NoError(t, err)
	for name, presented := range map[string]string{
		"Empty": "", "OtherBooking": other, "Truncated": token[:len(token)-1], "Garbage": "not-a-token",
	} {
		t.Run(name, func(t *testing.T) {
			require.ErrorIs(t, managetoken.Check(presented, secret.Hash), managetoken.ErrInvalid)
		})
	}
	t.Run("NoStoredHash", func(t *testing.T) {
		require.ErrorIs(t, managetoken.Check(token, nil), managetoken.ErrInvalid)
	})
	t.Run("OtherKey", func(t *testing.T) {
		forged := newIssuer(t, "fedcba9876543210fedcba9876543210").Derive(id, secret.Salt)
		require.ErrorIs(t, managetoken.Check(forged, secret.Hash), managetoken.ErrInvalid)
	})
}

func TestManageToken_ShortKeyRefused(t *testing.T) {
	t.Parallel()
	_, err := managetoken.NewIssuer([]byte("short"))
	require.Error(t, err)
}
