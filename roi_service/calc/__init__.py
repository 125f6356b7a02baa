"""Pure business calculations: ROI, payback, edge vs cloud cost, readiness, impact score, roadmap."""
