"""Run the review service as its own process on private input topics, so a test can SIGKILL it.

The topics come from REVIEW_TEST_TOPICS (comma-separated); every other setting
comes from the MEDGOV_REVIEW_* environment as in production.
"""

import os

from medgov_shared.service import run

from medgov_review.main import build_service
from medgov_review.settings import ReviewSettings

if __name__ == "__main__":
    topics = os.environ["REVIEW_TEST_TOPICS"].split(",")
    run(build_service(ReviewSettings(), consumes=topics, consume_inbound=False))
