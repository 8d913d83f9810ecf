"""Tools the agent may call. The MCP todo tools arrive here; identity comes from
`chatrelay.agents.TurnContext`, never from tool arguments."""
