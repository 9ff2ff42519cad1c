"""``runback receive``: the service that receives callbacks, keeps them and copies their
outputs. The light library (verification, payload reading) is ``runback.receiver``."""
