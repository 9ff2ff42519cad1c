"""HTTP helpers both apps use, the provider's API and the receiving service: the app base
that answers every error with the contract's envelope, size-limited body reading, API-key
authentication, cursor pagination and JSON answers. Nothing here knows runs or callbacks."""
