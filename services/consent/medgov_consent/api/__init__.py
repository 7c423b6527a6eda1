"""HTTP routes of the consent service."""

from fastapi import APIRouter

from medgov_consent.api import hospital, oversight, patient, public

ROUTERS: tuple[APIRouter, ...] = (patient.router, hospital.router, oversight.router, public.router)
