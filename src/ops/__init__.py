"""The ops command-line tool (`python -m src.ops ...` or `cerniq-ops ...`) and the demo.

cli.py       the argument parser and the one place that turns failures into exit codes
enqueue.py   enqueue any of the four jobs through src.client, optionally waiting for the result
status.py    queue depths, today's quota per phone and worker health
queues.py    reading arq queues and health keys from Redis
phones.py    registering a WhatsApp number
seed.py      the demo tenant
demo.py      the demo flow run by `make demo`
services.py  connecting to PostgreSQL and Redis, with one clear line when they do not answer
render.py    tables for people, JSON for machines
"""
