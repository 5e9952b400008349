"""The appliance's one web app: Twilio's webhooks and media websocket (later the status page,
/metrics and /healthz), served by uvicorn on the appliance's own event loop."""
