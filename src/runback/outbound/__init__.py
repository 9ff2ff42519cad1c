"""Outbound HTTP, for both halves: the sender of callbacks (and of the receiver's copies'
requests), the resolver that guards every connection with the URL policy, and the
classifier that names a failed request's cause."""
