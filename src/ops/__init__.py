"""The ops command-line tool (`python -m src.ops ...` or `cerniq-ops ...`) and the demo.

cli.py       the argument parser and the one place that turns failures into exit codes
enqueue.py   enqueue any of the four jobs through src.client, optionally waiting for the result
status.py    queue depths, today's quota per phone and worker health
queues.py    reading arq queues and health keys from Redis
phones.py    registering a WhatsApp number
suppress.py  suppression lists: add, remove, list, import
basis.py     a lead's lawful bases (set, import) and a tenant's allowed bases
objection.py a lead's objection: recorded, and its waiting messages withdrawn
audit.py     a lead's bases and every message sent to it
csvfile.py   the imports' CSV files: rows with their line numbers, one refusal naming every bad line
seed.py      the demo tenant
demo.py      the demo flow run by `make demo`
services.py  connecting to PostgreSQL and Redis, with one clear line when they do not answer
render.py    tables for people, JSON for machines
"""
