"""Community request and response bodies (pydantic), one module per area."""
