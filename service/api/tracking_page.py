"""The customer's tracking page: one small self-contained HTML document (no script, no external resource),
every value escaped, readable on a phone and with a screen reader."""

from __future__ import annotations

import base64
import hashlib
from html import escape
from zoneinfo import ZoneInfo

from domain.notifications import money
from domain.stages import Stage
from domain.tracking import TrackingView, language_or_default, when_in_words

_STYLE = """
:root{--ink:#1a1a1a;--muted:#555;--line:#dcdcd6;--ok:#1b5e20;--warn:#8a4b00;--bad:#8c1d18;--focus:#0b57d0}
*{box-sizing:border-box}
body{margin:0;font:17px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--ink);background:#f4f4f1}
main{max-width:36rem;margin:0 auto;padding:.75rem 1rem 2.5rem}
a{color:var(--focus)}
.top{display:flex;justify-content:space-between;align-items:center;gap:1rem;margin:0 0 .25rem;font-size:.95rem}
.top a{display:inline-block;padding:.6rem 0;min-height:44px}
h1{font-size:1.6rem;line-height:1.2;margin:.25rem 0}h2{font-size:1.05rem;margin:0 0 .5rem;color:var(--muted)}
section{background:#fff;border:1px solid var(--line);border-radius:.75rem;padding:1rem;margin:.9rem 0}
.muted{color:var(--muted)}.ref{margin:0;font-size:.95rem}
.stage h2{font-size:1.35rem;color:var(--ink);margin:0 0 .25rem}
.big{font-size:1.45rem;font-weight:700;line-height:1.3;margin:.1rem 0 .25rem}
.notice{border-left:5px solid var(--bad);background:#fdecea;padding:.75rem;border-radius:.4rem}
.delay{border-left:5px solid var(--warn);background:#fff4e0;padding:.75rem;border-radius:.4rem;margin:.75rem 0 0}
ol.steps{list-style:none;padding:0;margin:1rem 0 0}
ol.steps li{position:relative;padding:0 0 .9rem 2.25rem;color:var(--muted);min-height:1.75rem}
ol.steps li:last-child{padding-bottom:0}
ol.steps li::before{content:"";position:absolute;left:0;top:.05rem;width:1.3rem;height:1.3rem;border-radius:50%;
border:2px solid #9a9a94;background:#fff}
ol.steps li:not(:last-child)::after{content:"";position:absolute;left:.6rem;top:1.45rem;bottom:.1rem;width:2px;
background:#cfcfc8}
ol.steps li.done{color:var(--ink)}
ol.steps li.done::before{background:var(--ok);border-color:var(--ok)}
ol.steps li.done::after{background:var(--ok)}
ol.steps li[aria-current]{color:var(--ok);font-weight:700;font-size:1.1rem}
ol.steps li[aria-current]::before{border:6px solid var(--ok)}
table{width:100%;border-collapse:collapse}th,td{text-align:left;padding:.5rem .25rem;border-bottom:1px solid #eee}
td.n,th.n{text-align:right;white-space:nowrap}tfoot th,tfoot td{font-weight:700;font-size:1.15rem;border-bottom:0}
label{display:block;margin:1rem 0 .35rem;font-weight:600}
textarea{width:100%;font:inherit;padding:.6rem;border:1px solid #8a8a84;border-radius:.5rem}
.buttons{display:grid;gap:.75rem;margin-top:1rem}
button{font:inherit;font-size:1.1rem;font-weight:700;min-height:3.25rem;width:100%;padding:.75rem 1rem;
border-radius:.6rem;border:2px solid var(--ok);background:var(--ok);color:#fff;cursor:pointer}
button.secondary{background:#fff;color:var(--bad);border-color:var(--bad)}
button:focus-visible,a:focus-visible,textarea:focus-visible{outline:3px solid var(--focus);outline-offset:2px}
.hours{font-size:1.1rem;font-weight:600;margin:.25rem 0 0}
.sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)}
@media (min-width:40rem){
main{padding-top:1.5rem}
ol.steps{display:flex;gap:.25rem}
ol.steps li{flex:1;padding:2rem 0 0;text-align:center;font-size:.9rem}
ol.steps li::before{left:50%;margin-left:-.65rem}
ol.steps li:not(:last-child)::after{left:calc(50% + .9rem);right:calc(-50% + .9rem);top:.6rem;bottom:auto;
width:auto;height:2px}
ol.steps li[aria-current]{font-size:.95rem}
.buttons{grid-template-columns:1fr 1fr}
}
"""
# The page's only style, allowed by its hash: the Content-Security-Policy needs no 'unsafe-inline'.
_STYLE_HASH = base64.b64encode(hashlib.sha256(_STYLE.encode()).digest()).decode()
CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)

_WORDS = {
    "fr": {
        "title": "Suivi de réparation",
        "ref": "Dossier",
        "steps": "Étapes de la réparation",
        "promised": "Date promise",
        "estimate": "Devis",
        "item": "Désignation",
        "qty": "Qté",
        "amount": "Montant",
        "total": "Total",
        "note": "Un message pour l'atelier (facultatif)",
        "approve": "J'accepte le devis",
        "decline": "Je refuse le devis",
        "approved": "Devis accepté le {at}.",
        "declined": "Devis refusé le {at}.",
        "budget": "Devis dans le budget que vous aviez accepté au dépôt.",
        "shop": "Votre boutique",
        "hours": "Horaires",
        "expires": "Ce lien fonctionne jusqu'au {at}.",
        "private": "Ce lien est personnel : ne le partagez pas.",
        "back": "Revenir au suivi",
        "done": "terminé",
    },
    "en": {
        "title": "Repair tracking",
        "ref": "Job",
        "steps": "Repair steps",
        "promised": "Promised date",
        "estimate": "Estimate",
        "item": "Item",
        "qty": "Qty",
        "amount": "Amount",
        "total": "Total",
        "note": "A message for the workshop (optional)",
        "approve": "I approve the estimate",
        "decline": "I decline the estimate",
        "approved": "Estimate approved on {at}.",
        "declined": "Estimate declined on {at}.",
        "budget": "Estimate within the budget you agreed to when you left the device.",
        "shop": "Your shop",
        "hours": "Opening hours",
        "expires": "This link works until {at}.",
        "private": "This link is personal: do not share it.",
        "back": "Back to tracking",
        "done": "done",
    },
}
_SWITCH = {"fr": ("en", "English"), "en": ("fr", "Français")}  # the other language, in itself
_ERRORS = {
    404: {
        "fr": ("Lien introuvable", "Ce lien de suivi n'existe pas ou ne fonctionne plus. Contactez votre boutique."),
        "en": ("Link not found", "This tracking link does not exist or no longer works. Please contact your shop."),
    },
    429: {
        "fr": ("Trop de demandes", "Merci de patienter une minute avant de réessayer."),
        "en": ("Too many requests", "Please wait a minute before trying again."),
    },
}
_CONFLICT = {
    "fr": "Votre réponse n'a pas été enregistrée : ce devis n'attend plus de réponse, ou en a déjà une. "
    "Pour la changer, appelez votre boutique.",
    "en": "Your answer was not recorded: this estimate no longer awaits one, or already has one. "
    "To change it, please call your shop.",
}
_IN_PROGRESS = frozenset(Stage) - {Stage.READY_FOR_PICKUP, Stage.COLLECTED, Stage.CANCELLED}


def page(view: TrackingView, *, approval_path: str, notice: str | None = None) -> str:
    """The whole page; `approval_path`: where the approve/decline form posts."""
    lang = view.language
    w = _WORDS[lang]
    tz = ZoneInfo(view.branch.timezone)
    other, other_name = _SWITCH[lang]
    body = [
        f'<header class="top"><span class="muted">{escape(view.branch.name)}</span>'
        f'<a href="?lang={other}" hreflang="{other}" lang="{other}">{other_name}</a></header>',
        f"<h1>{escape(view.device)}</h1>",
        f'<p class="muted ref">{w["ref"]} {escape(view.ref)}</p>',
    ]
    if notice:
        body.append(f'<p class="notice" role="alert">{escape(notice)}</p>')
    body.append(_stage(view, w))
    if view.stage in _IN_PROGRESS:
        body.append(_promise(view, w))
    if view.estimate is not None:
        body.append(_estimate(view, w, tz, approval_path))
    colon = " :" if lang == "fr" else ":"  # French typography spaces it
    body.append(
        f'<section aria-labelledby="shop-h"><h2 id="shop-h">{w["shop"]}</h2>'
        f"<p>{escape(view.branch.name)}</p>"
        f'<p class="hours">{w["hours"]}{colon} {escape(view.branch.hours)}</p></section>'
    )
    footer = [w["private"]]
    if view.link_expires_at is not None:
        footer.append(w["expires"].format(at=when_in_words(view.link_expires_at, tz, lang)))
    body.append(f'<p class="muted">{escape(" ".join(footer))}</p>')
    return _document(lang, f"{w['title']} · {view.ref}", "\n".join(body))


def conflict_notice(language: str) -> str:
    """Why the page's form did not record the answer (409), in the page's language."""
    return _CONFLICT[language_or_default(language)]


def error_page(status: int, language: str | None, *, back: str | None = None) -> str:
    """A 404 (unknown, revoked or expired link) or 429 page, saying nothing about any job."""
    lang = language_or_default(language)
    title, text = _ERRORS[status][lang]
    body = f"<h1>{title}</h1><p>{text}</p>"
    if back:
        body += f'<p><a href="{escape(back)}">{_WORDS[lang]["back"]}</a></p>'
    return _document(lang, title, body)


def _document(lang: str, title: str, body: str) -> str:
    return (
        f'<!doctype html>\n<html lang="{lang}">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="robots" content="noindex, nofollow">\n<meta name="referrer" content="no-referrer">\n'
        f"<title>{escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n"
        f"<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n"
    )


def _stage(view: TrackingView, w: dict[str, str]) -> str:
    parts = [
        f'<section class="stage" aria-labelledby="stage-h"><h2 id="stage-h">{escape(view.stage_title)}</h2>',
        f"<p>{escape(view.stage_text)}</p>",
    ]
    if view.step is not None:
        items = []
        for index, name in enumerate(view.steps):
            if index == view.step:
                attributes, state = ' aria-current="step"', ""
            elif index < view.step:  # a screen reader hears what the green dot shows
                attributes, state = ' class="done"', f'<span class="sr"> ({w["done"]})</span>'
            else:
                attributes, state = "", ""
            items.append(f"<li{attributes}>{escape(name)}{state}</li>")
        parts.append(f'<ol class="steps" aria-label="{w["steps"]}">{"".join(items)}</ol>')
    parts.append("</section>")
    return "".join(parts)


def _promise(view: TrackingView, w: dict[str, str]) -> str:
    parts = [
        f'<section aria-labelledby="date-h"><h2 id="date-h">{w["promised"]}</h2>',
        f'<p class="big">{escape(view.promised)}</p>',
    ]
    if view.parts_delay:
        parts.append(f'<p class="delay">{escape(view.parts_delay)}</p>')
    parts.append("</section>")
    return "".join(parts)


def _estimate(view: TrackingView, w: dict[str, str], tz: ZoneInfo, approval_path: str) -> str:
    assert view.estimate is not None
    lang = view.language
    rows = "".join(
        f'<tr><td>{escape(line.description)}</td><td class="n">{line.quantity}</td>'
        f'<td class="n">{escape(money(line.total_cents, lang))}</td></tr>'
        for line in view.estimate.lines
    )
    parts = [
        f'<section aria-labelledby="est-h"><h2 id="est-h">{w["estimate"]}</h2>',
        f'<table><thead><tr><th scope="col">{w["item"]}</th><th scope="col" class="n">{w["qty"]}</th>'
        f'<th scope="col" class="n">{w["amount"]}</th></tr></thead><tbody>{rows}</tbody>'
        f'<tfoot><tr><th scope="row" colspan="2">{w["total"]}</th>'
        f'<td class="n">{escape(view.estimate.total)}</td></tr></tfoot></table>',
    ]
    answer = view.answer
    if answer is not None and answer.source == "preapproved_budget":
        parts.append(f"<p>{w['budget']}</p>")
    elif answer is not None:
        said = w["approved"] if answer.approved else w["declined"]
        parts.append(f"<p>{escape(said.format(at=when_in_words(answer.at, tz, lang)))}</p>")
    if view.awaits_answer:
        parts.append(
            f'<form method="post" action="{escape(approval_path)}">'
            f'<input type="hidden" name="lang" value="{lang}">'
            f'<label for="note">{w["note"]}</label>'
            '<textarea id="note" name="note" rows="3" maxlength="4000"></textarea>'
            '<div class="buttons">'
            f'<button type="submit" name="approved" value="true">{w["approve"]}</button>'
            f'<button type="submit" name="approved" value="false" class="secondary">{w["decline"]}</button>'
            "</div></form>"
        )
    parts.append("</section>")
    return "".join(parts)
