"""The live dashboard served at /dashboard: a sampler that keeps per-second series of the
server's statistics (feed.py), its routes (routes.py), and the page itself (static files here,
plain HTML/JS/CSS without a build step)."""
