-- Separate store for re-identification key material on the local PostgreSQL.
--
-- PIPA requires the additional information that can re-identify pseudonymized
-- data to be kept apart from it under its own access control. Here that is the
-- per-region HMAC key behind every subject pseudonym
-- (medgov_shared/contracts/pseudonym.py). It lives in the database medgov_keys,
-- owned by the role medgov_keys, and no service role may connect to it or read
-- its table. deploy/k8s/base/postgres/cluster.yaml sets up the same roles and
-- database on Kubernetes.
--
-- Run it as a superuser; running it again changes nothing:
--   psql -v ON_ERROR_STOP=1 "postgresql://medgov@127.0.0.1:15432/postgres" -f deploy/local/keystore.sql
-- tests/pipa/test_key_separation.py applies it the same way through asyncpg.

-- Roles. LOGIN without a password suits the local server, which trusts every
-- local connection; production roles get passwords from Kubernetes Secrets.
DO $$
DECLARE
    name text;
BEGIN
    FOREACH name IN ARRAY ARRAY['medgov_keys', 'medgov_review', 'medgov_catalog', 'medgov_consent', 'medgov_grants']
    LOOP
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = name) THEN
            EXECUTE format('CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE', name);
        END IF;
    END LOOP;
END
$$;

SELECT 'CREATE DATABASE medgov_keys OWNER medgov_keys'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'medgov_keys')\gexec

-- PostgreSQL grants CONNECT and TEMP on every new database to PUBLIC.
REVOKE ALL ON DATABASE medgov_keys FROM PUBLIC;
GRANT CONNECT ON DATABASE medgov_keys TO medgov_keys;

\connect medgov_keys

-- Before PostgreSQL 15, PUBLIC may create objects in schema public.
REVOKE ALL ON SCHEMA public FROM PUBLIC;

CREATE SCHEMA IF NOT EXISTS keys AUTHORIZATION medgov_keys;
REVOKE ALL ON SCHEMA keys FROM PUBLIC;

-- One row per region and key version. A pseudonym names both
-- ('daegu.k1.<hex>'), so a rotated key stays here for the subjects pseudonymized
-- under it; retiring a key sets retired_at and never deletes the row.
CREATE TABLE IF NOT EXISTS keys.pseudonym_keys (
    region       text NOT NULL CHECK (region ~ '^[a-z]{2,16}$'),
    key_version  integer NOT NULL CHECK (key_version BETWEEN 1 AND 999),
    key_material bytea NOT NULL CHECK (octet_length(key_material) >= 32),
    created_at   timestamptz NOT NULL DEFAULT now(),
    retired_at   timestamptz,
    PRIMARY KEY (region, key_version)
);
ALTER TABLE keys.pseudonym_keys OWNER TO medgov_keys;
REVOKE ALL ON TABLE keys.pseudonym_keys FROM PUBLIC;
