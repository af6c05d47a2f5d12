"""Wire models of the HTTP API (``allot.wire.schemas``): what clients send and what the server
answers. The server (``allot.api``) and the SDK (``allot.client``) both import them; this
package imports Pydantic and the standard library only, so the SDK never imports the server.
"""
