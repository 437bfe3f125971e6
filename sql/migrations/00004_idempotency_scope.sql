-- +goose Up

-- Idempotency keys of the back office belong to the operator who sent them:
-- two operators who happen to choose the same key never see each other's
-- stored responses. Public keys keep the empty scope.
ALTER TABLE idempotency_keys ADD COLUMN scope text NOT NULL DEFAULT '';
ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_pkey;
ALTER TABLE idempotency_keys ADD PRIMARY KEY (scope, key);

-- The comment of 00002 predates admin refunds, which set it too.
COMMENT ON COLUMN bookings.refund_requested_at IS
    'When Stripe accepted a full refund of this booking, requested automatically (refund_pending) or by an operator. NULL on a refund_pending booking means the reconciler still has to request it.';

-- +goose Down
COMMENT ON COLUMN bookings.refund_requested_at IS NULL;
DELETE FROM idempotency_keys WHERE scope <> '';
ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_pkey;
ALTER TABLE idempotency_keys ADD PRIMARY KEY (key);
ALTER TABLE idempotency_keys DROP COLUMN scope;
