"""The MCP todo server and its five tools. They act for the verified caller only (the turn's
user in-process, the token's user over `/mcp`), never for a user named in tool arguments."""
