"""DynamoDB adapters over the one store table (layout in `table.py`)."""
