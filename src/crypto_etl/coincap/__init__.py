"""The CoinCap v3 HTTP side: the client, its rate limiter and the credit rule."""
