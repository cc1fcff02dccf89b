"""Seat holds, gift cards and customer sign-up for the box-office worker pool."""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import ForeignKey, Numeric, String, UniqueConstraint, create_engine, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

engine = create_engine(os.environ.get("BOXOFFICE_DSN", "postgresql+psycopg://localhost/boxoffice"), pool_size=10)
SessionLocal = sessionmaker(engine, expire_on_commit=False)


class Base(DeclarativeBase):
    pass


class Show(Base):
    __tablename__ = "shows"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    capacity: Mapped[int]
    sold: Mapped[int] = mapped_column(default=0)
    version: Mapped[int] = mapped_column(nullable=False, default=1)
    __mapper_args__ = {"version_id_col": version}


class Seat(Base):
    __tablename__ = "seats"
    id: Mapped[int] = mapped_column(primary_key=True)
    show_id: Mapped[int] = mapped_column(ForeignKey("shows.id"))
    label: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(10), default="free")
    holder_id: Mapped[int | None]


class GiftCard(Base):
    __tablename__ = "gift_cards"
    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    balance: Mapped[Decimal] = mapped_column(Numeric(10, 2))


class Customer(Base):
    __tablename__ = "customers"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200))


class WaitlistEntry(Base):
    __tablename__ = "waitlist"
    __table_args__ = (UniqueConstraint("show_id", "customer_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    show_id: Mapped[int] = mapped_column(ForeignKey("shows.id"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))


@dataclass(frozen=True)
class BoxOfficeRequest:
    kind: str
    show_id: int = 0
    seat_label: str = ""
    customer_id: int = 0
    email: str = ""
    name: str = ""
    card_id: str = ""
    amount: Decimal = Decimal("0")


class SeatUnavailable(Exception):
    pass


def hold_seat(session: Session, show_id: int, label: str, customer_id: int) -> bool:
    seat = session.scalars(select(Seat).where(Seat.show_id == show_id, Seat.label == label)).one()
    if seat.status != "free":
        return False
    seat.status = "held"
    seat.holder_id = customer_id
    session.commit()
    return True


def hold_seat_locked(session: Session, show_id: int, label: str, customer_id: int) -> bool:
    stmt = select(Seat).where(Seat.show_id == show_id, Seat.label == label).with_for_update()
    seat = session.scalars(stmt).one()
    if seat.status != "free":
        session.rollback()
        return False
    seat.status = "held"
    seat.holder_id = customer_id
    session.commit()
    return True


def hold_seat_if_free(session: Session, show_id: int, label: str, customer_id: int) -> None:
    result = session.execute(
        update(Seat)
        .where(Seat.show_id == show_id, Seat.label == label, Seat.status == "free")
        .values(status="held", holder_id=customer_id)
    )
    if result.rowcount != 1:
        session.rollback()
        raise SeatUnavailable(f"{show_id}/{label}")
    session.commit()


def record_sale(session: Session, show_id: int, tickets: int) -> int:
    # Show carries version_id_col: a concurrent flush raises StaleDataError instead of losing the update.
    show = session.get(Show, show_id)
    show.sold += tickets
    session.commit()
    return show.capacity - show.sold


def redeem_gift_card(session: Session, card_id: str, amount: Decimal) -> Decimal:
    card = session.get(GiftCard, card_id)
    if card is None or card.balance < amount:
        raise ValueError("gift card balance too low")
    card.balance = card.balance - amount
    session.commit()
    return card.balance


def top_up_gift_card(session: Session, card_id: str, amount: Decimal) -> None:
    session.execute(update(GiftCard).where(GiftCard.id == card_id).values(balance=GiftCard.balance + amount))
    session.commit()


def register_customer(session: Session, email: str, name: str) -> Customer:
    existing = session.query(Customer).filter_by(email=email.lower()).first()
    if existing is not None:
        return existing
    customer = Customer(email=email.lower(), name=name)
    session.add(customer)
    session.commit()
    return customer


def register_customer_upsert(session: Session, email: str, name: str) -> int:
    stmt = (
        insert(Customer)
        .values(email=email.lower(), name=name)
        .on_conflict_do_nothing(index_elements=[Customer.email])
    )
    session.execute(stmt)
    session.commit()
    return session.scalars(select(Customer.id).where(Customer.email == email.lower())).one()


def join_waitlist(session: Session, show_id: int, customer_id: int) -> WaitlistEntry:
    query = select(WaitlistEntry).where(WaitlistEntry.show_id == show_id, WaitlistEntry.customer_id == customer_id)
    entry = session.scalars(query).first()
    if entry is not None:
        return entry
    try:
        entry = WaitlistEntry(show_id=show_id, customer_id=customer_id)
        session.add(entry)
        session.commit()
    except IntegrityError:
        session.rollback()
        entry = session.scalars(query).one()
    return entry


def process_request(req: BoxOfficeRequest) -> object:
    with SessionLocal() as session:
        if req.kind == "hold":
            return hold_seat(session, req.show_id, req.seat_label, req.customer_id)
        if req.kind == "hold-strict":
            return hold_seat_locked(session, req.show_id, req.seat_label, req.customer_id)
        if req.kind == "hold-fast":
            return hold_seat_if_free(session, req.show_id, req.seat_label, req.customer_id)
        if req.kind == "sale":
            return record_sale(session, req.show_id, 1)
        if req.kind == "redeem":
            return redeem_gift_card(session, req.card_id, req.amount)
        if req.kind == "top-up":
            return top_up_gift_card(session, req.card_id, req.amount)
        if req.kind == "signup":
            return register_customer(session, req.email, req.name).id
        if req.kind == "signup-upsert":
            return register_customer_upsert(session, req.email, req.name)
        if req.kind == "waitlist":
            return join_waitlist(session, req.show_id, req.customer_id).id
        raise ValueError(f"unknown request kind {req.kind!r}")


def run_batch(requests: list[BoxOfficeRequest]) -> list[object]:
    with ThreadPoolExecutor(max_workers=8, thread_name_prefix="boxoffice") as pool:
        return list(pool.map(process_request, requests))
