"""The console's pages. Each view checks its input, calls one service function, and renders a
template (or redirects with a message after an action)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from flask import (
    Blueprint,
    Response,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from marshmallow import EXCLUDE, ValidationError
from werkzeug.wrappers import Response as BaseResponse

from app.services import kpis, review, staff, support
from app.services.errors import ServiceError
from app.web import services
from app.web.api import schemas
from app.web.api.routing import field_errors
from app.web.console import security
from sms.instructions import format_rupees, parse_rupees
from sms.numbers import mask_party
from storage.errors import InsufficientFunds
from storage.models import StaffRole, TransactionState

bp = Blueprint("console", __name__, url_prefix="/console")
Page = str | BaseResponse | tuple[str, int]


@bp.record_once
def _setup(state: Any) -> None:
    security.configure(state.app)


@bp.before_request
def _guard() -> BaseResponse | None:
    return security.guard(services())


@bp.after_request
def _headers(response: Response) -> Response:
    return security.headers(response)


@bp.errorhandler(ServiceError)
def _refused(exc: ServiceError) -> Page:
    flash(str(exc), "error")
    return redirect(url_for("console.transactions"))


@bp.app_template_global()
def csrf_token() -> str:
    """The hidden field every console form carries."""
    return security.csrf_token()


@bp.app_template_filter("when")
def when(ts: float | None) -> str:
    """A Unix time as local date and time."""
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, services().tz).strftime("%Y-%m-%d %H:%M:%S")


@bp.app_template_filter("rupees")
def rupees(paise: int) -> str:
    """Paise as 'Rs 250.00'."""
    return format_rupees(paise)


@bp.app_template_filter("masked")
def masked(party: str | None) -> str:
    """A phone number or UPI id masked, for lists."""
    return mask_party(party) if party else "-"


def _is_admin() -> bool:
    return bool(g.staff.role is StaffRole.ADMIN)


def _render(template: str, **context: Any) -> str:
    return render_template(f"console/{template}", staff=g.staff, is_admin=_is_admin(), **context)


@bp.route("/login", methods=["GET", "POST"])
def login() -> Page:
    """Sign in with name and password."""
    if request.method == "GET":
        return render_template("console/login.html", next=request.args.get("next", ""))
    name, password = request.form.get("name", "").strip(), request.form.get("password", "")
    member = staff.sign_in(services(), name, password)
    if member is None:
        flash("Wrong name or password.", "error")
        return render_template("console/login.html", next=request.form.get("next", "")), 401
    security.start_session(member)
    return redirect(security.safe_next(request.form.get("next")))


@bp.post("/logout")
def logout() -> Page:
    """Sign out."""
    session.clear()
    return redirect(url_for("console.login"))


@bp.get("/")
def dashboard() -> Page:
    """Today's and the last 7 days' KPIs, with charts."""
    data = kpis.dashboard(services())
    chart = {
        "days": [
            {"label": d.label, "succeeded": d.succeeded, "failed": d.failed,
             "other": d.count - d.succeeded - d.failed, "amount": d.amount / 100}
            for d in data.days
        ],
        "failures": data.week.failures,
        "channels": data.week.channels,
    }  # fmt: skip
    quiet = services().settings.worker_quiet_seconds
    return _render("dashboard.html", k=data, chart=chart, quiet_seconds=quiet)


def _query() -> tuple[support.TxQuery | None, dict[str, list[str]]]:
    """The search form's fields, checked with the API's schema."""
    args = {k: v.strip().replace(" ", "") for k, v in request.args.items() if v.strip()}
    if "reference" in args:
        args["reference"] = args["reference"].upper()
    try:
        return support.TxQuery(**schemas.TransactionQuery().load(args, unknown=EXCLUDE)), {}
    except ValidationError as exc:
        return None, field_errors(exc)


@bp.get("/transactions")
def transactions() -> Page:
    """Search by reference, phone, state and local days; phone numbers masked."""
    query, problems = _query()
    if query is not None and query.reference and not (query.phone or query.state):
        return redirect(url_for("console.transaction", reference=query.reference))
    results = support.search(services(), query) if query is not None and request.args else None
    args = {k: v for k, v in request.args.items() if k != "page"}
    return _render("transactions.html", results=results, problems=problems, args=args,
                   states=[s.value for s in TransactionState])  # fmt: skip


@bp.get("/transactions/<reference>")
def transaction(reference: str) -> Page:
    """One transaction's timeline; phone numbers in full."""
    try:
        view = support.transaction_view(services(), reference)
    except support.UnknownTransaction as exc:
        flash(str(exc), "error")
        return redirect(url_for("console.transactions"))
    return _render("transaction.html", v=view)


@bp.get("/users/<user_id>")
def user(user_id: str) -> Page:
    """One user's page; the phone number in full."""
    try:
        view = support.user_view(services(), user_id=user_id)
    except ServiceError as exc:
        flash(str(exc), "error")
        return redirect(url_for("console.transactions"))
    return _render("user.html", u=view)


@bp.get("/users")
def find_user() -> Page:
    """A user by phone number."""
    phone = request.args.get("phone", "").strip().replace(" ", "")
    try:
        view = support.user_view(services(), phone=phone)
    except ServiceError as exc:
        flash(str(exc), "error")
        return redirect(url_for("console.transactions"))
    return redirect(url_for("console.user", user_id=view.user.id))


@bp.get("/flagged")
def flagged() -> Page:
    """FLAGGED payments waiting for review, oldest first."""
    page = request.args.get("page", "1")
    number = int(page) if page.isdigit() and 0 < int(page) <= schemas.MAX_PAGE else 1
    return _render("flagged.html", results=support.flagged_queue(services(), number, 20))


@bp.get("/audit")
def audit() -> Page:
    """The audit log, newest first."""
    page = request.args.get("page", "1")
    number = int(page) if page.isdigit() and 0 < int(page) <= schemas.MAX_PAGE else 1
    return _render("audit.html", results=support.audit_log(services(), number, 50))


def _act(action: Callable[[], Any], done: Callable[[Any], str], back: str) -> Page:
    """Run an admin action; say what happened on the page it came from."""
    try:
        result = action()
    except ValidationError as exc:
        problems = field_errors(exc).items()
        flash("; ".join(f"{k}: {' '.join(v)}" for k, v in problems), "error")
    except InsufficientFunds:
        flash("A balance does not cover this; nothing was moved.", "error")
    except ServiceError as exc:
        flash(str(exc), "error")
    else:
        flash(done(result), "ok")
    return redirect(back)


def _reason() -> str:
    reason: str = schemas.ReasonBody().load({"reason": request.form.get("reason", "")})["reason"]
    return reason


@bp.post("/transactions/<reference>/<verb>")
def act_on_transaction(reference: str, verb: str) -> Page:
    """Approve, reject or reverse a transaction (admins)."""
    actions = {"approve": review.approve, "reject": review.reject, "reverse": review.reverse}
    if verb not in actions:
        return Response("unknown action", 404, mimetype="text/plain")
    back = request.form.get("back", "")
    target = back if back == url_for("console.flagged") else None
    return _act(
        lambda: actions[verb](services(), g.staff, reference, _reason()),
        lambda t: f"{t.reference} is now {t.state.value}.",
        target or url_for("console.transaction", reference=reference),
    )


@bp.post("/users/<user_id>/unlock")
def unlock(user_id: str) -> Page:
    """Clear a user's PIN lockout (admins)."""
    view = support.user_view(services(), user_id=user_id)
    return _act(
        lambda: review.unlock(services(), g.staff, view.user.phone, _reason()),
        lambda _: "The account is unlocked and the user has been told by SMS.",
        url_for("console.user", user_id=user_id),
    )


@bp.post("/users/<user_id>/credit")
def credit(user_id: str) -> Page:
    """Credit a user's wallet with a reason (admins)."""
    view = support.user_view(services(), user_id=user_id)

    def run() -> Any:
        try:
            paise = parse_rupees(request.form.get("amount", ""))
        except ValueError:
            raise ValidationError({"amount": ["rupees, e.g. 500 or 500.00"]}) from None
        body = schemas.CreditBody().load(
            {"amount": paise, "reason": request.form.get("reason", "")}
        )
        return review.credit(services(), g.staff, view.user.phone, body["amount"], body["reason"])

    return _act(
        run,
        lambda t: f"Credited {format_rupees(t.amount)}, ref {t.reference}.",
        url_for("console.user", user_id=user_id),
    )
