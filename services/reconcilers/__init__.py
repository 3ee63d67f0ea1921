"""One Restate VirtualObject per kind, keyed per resource, all built on `framework`."""
