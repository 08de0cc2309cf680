"""The Functions entry point: one FunctionApp, one blueprint per module of functions/.

The host imports this module to index functions, so it does no I/O and reads no settings.
Auth level is ANONYMOUS at the platform: Ascent authenticates every request itself (API keys,
per tenant), which works the same on the dev host, in a container and on ACA.
"""

import azure.functions as func

from functions import (
    admin_http,
    agents_http,
    assistants_http,
    crons_http,
    events_http,
    fallback_http,
    health_http,
    mcp_http,
    openai_http,
    openapi_http,
    protocol_agents_http,
    protocol_runs_http,
    protocol_threads_http,
    responses_http,
    reviews_http,
    runs_queue,
    store_http,
    threads_http,
    usage_http,
)

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
app.register_functions(health_http.bp)
app.register_functions(agents_http.bp)
app.register_functions(threads_http.bp)
app.register_functions(openai_http.bp)
app.register_functions(responses_http.bp)
app.register_functions(openapi_http.bp)
app.register_functions(admin_http.bp)
app.register_functions(protocol_agents_http.bp)
app.register_functions(assistants_http.bp)
app.register_functions(protocol_threads_http.bp)
app.register_functions(protocol_runs_http.bp)
app.register_functions(store_http.bp)
app.register_functions(crons_http.bp)
app.register_functions(events_http.bp)
app.register_functions(runs_queue.bp)
app.register_functions(reviews_http.bp)
app.register_functions(mcp_http.bp)
app.register_functions(usage_http.bp)
# Last: the catch-all answers what no route above serves (problem+json 404/405, CORS preflight).
app.register_functions(fallback_http.blueprint_for(app))
