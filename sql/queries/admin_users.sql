-- name: AdminUserInsert :one
INSERT INTO admin_users (id, email, role, password_hash)
VALUES (@id, @email, @role, @password_hash)
RETURNING *;

-- name: AdminUserUpdate :one
UPDATE admin_users
SET role = @role, password_hash = @password_hash, updated_at = now()
WHERE email = @email
RETURNING *;

-- name: AdminUserGetByEmail :one
SELECT * FROM admin_users WHERE email = $1;
