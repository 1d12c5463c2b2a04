"""The pages' words in French (the default) and English; staff choose theirs at sign-in or in the menu."""

from __future__ import annotations

from collections.abc import Callable

from domain.stages import Stage

LANGUAGES = ("fr", "en")

_WORDS: dict[str, tuple[str, str]] = {
    # (fr, en)
    "app": ("Atelier", "Atelier"),
    "sign_in": ("Se connecter", "Sign in"),
    "sign_out": ("Se déconnecter", "Sign out"),
    "username": ("Identifiant", "Username"),
    "password": ("Mot de passe", "Password"),
    "language": ("Langue", "Language"),
    "wrong_credentials": ("Identifiant ou mot de passe incorrect.", "Wrong username or password."),
    "board": ("Tableau", "Board"),
    "counter": ("Comptoir", "Counter"),
    "bench": ("Établi", "Bench"),
    "pickup": ("Retrait", "Pickup"),
    "late": ("Pièces en retard", "Late parts"),
    "manager": ("Gestion", "Manager"),
    "express": ("Express", "Express"),
    "due_in": ("à rendre dans", "due in"),
    "overdue_by": ("en retard de", "overdue by"),
    "at_risk": ("à risque", "at risk"),
    "breached": ("délai dépassé", "breached"),
    "late_parts": ("pièce en retard", "late part"),
    "no_jobs": ("Aucun dossier", "No jobs"),
    "all_tiers": ("Tous", "All"),
    "standard": ("Standard", "Standard"),
    "filter": ("Filtrer", "Filter"),
    "only_late": ("En retard seulement", "Late only"),
    "updated": ("Mis à jour à", "Updated at"),
    "main_menu": ("Menu principal", "Main menu"),
}

_STAGES: dict[Stage, tuple[str, str]] = {
    Stage.RECEIVED: ("Reçu", "Received"),
    Stage.DIAGNOSING: ("Diagnostic", "Diagnosing"),
    Stage.AWAITING_APPROVAL: ("Attente accord", "Awaiting approval"),
    Stage.AWAITING_PARTS: ("Attente pièces", "Awaiting parts"),
    Stage.REPAIRING: ("Réparation", "Repairing"),
    Stage.QUALITY_CHECK: ("Contrôle", "Quality check"),
    Stage.READY_FOR_PICKUP: ("Prêt", "Ready for pickup"),
    Stage.ON_HOLD: ("En pause", "On hold"),
    Stage.COLLECTED: ("Récupéré", "Collected"),
    Stage.CANCELLED: ("Annulé", "Cancelled"),
}


def translator(language: str) -> Callable[[str], str]:
    """`t(key)` in `language`; an unknown key shows as itself (visible in review, never a crash)."""
    index = LANGUAGES.index(language) if language in LANGUAGES else 0

    def t(key: str) -> str:
        words = _WORDS.get(key)
        return words[index] if words else key

    return t


def stage_name(stage: Stage, language: str) -> str:
    return _STAGES[stage][LANGUAGES.index(language) if language in LANGUAGES else 0]


def duration_words(seconds: float, language: str) -> str:
    """ "2 h 05", "3 j 4 h" / "3 d 4 h": what a glance at the board needs, not more."""
    minutes = int(abs(seconds) // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    day = "j" if language == "fr" else "d"
    if days:
        return f"{days} {day} {hours} h"
    return f"{hours} h {mins:02d}" if hours else f"{mins} min"
