"""The staff's web pages (server-rendered Jinja + HTMX, no front-end build) and their cookie sign-in."""
