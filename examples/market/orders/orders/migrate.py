"""`python -m orders.migrate`: the init container that must succeed before the app starts."""

import os

import psycopg

with psycopg.connect(os.environ["DATABASE_URL"]) as conn:
    conn.execute("CREATE TABLE IF NOT EXISTS orders (id serial PRIMARY KEY, sku text NOT NULL)")
