"""The appliance's one web app, served by uvicorn on the appliance's own event loop: the status
page (login, health, live calls, history), /metrics and /healthz, Twilio's webhooks and media
websocket; and the box's zeroconf advertisement."""
