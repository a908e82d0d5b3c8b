"""The API service: Nova's Compute API v2.1 shapes over HTTP (tornado), on 127.0.0.1.
A create writes the instances, hands the build over with one cast, and answers 202 before
any scheduling happens (unless ``local_mode`` makes it do the conductor's work itself)."""
