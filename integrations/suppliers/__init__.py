"""Supplier adapters behind one protocol (`base.SupplierClient`)."""
