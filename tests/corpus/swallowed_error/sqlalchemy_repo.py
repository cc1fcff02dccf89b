"""Order persistence on SQLAlchemy 2.0."""
from __future__ import annotations

import time
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from typing import Iterator

from loguru import logger
from sqlalchemy import Engine, create_engine, delete, func, insert, select, text
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from .models import ArchivedOrder, Order, OrderStatus

SessionLocal = sessionmaker(expire_on_commit=False)


class DuplicateOrder(Exception):
    pass


@contextmanager
def session_scope() -> Iterator[Session]:
    session = SessionLocal()
    try:
        yield session
        session.commit()
    except Exception:
        session.rollback()
        raise
    finally:
        session.close()


def get_engine_or_none(url: str | None) -> Engine | None:
    if not url:
        return None
    try:
        return create_engine(url, pool_pre_ping=True)
    except Exception:
        return None


def is_db_healthy(engine: Engine) -> bool:
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except Exception:
        return False


def wait_for_database(engine: Engine, max_attempts: int = 5) -> None:
    attempt = 0
    while True:
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            break
        except OperationalError:
            attempt += 1
            if attempt >= max_attempts:
                logger.error("database still unreachable after {} attempts", attempt)
                break
            time.sleep(2 * attempt)


class OrderRepository:
    def __init__(self, session: Session):
        self.session = session

    def add(self, order: Order) -> Order:
        try:
            self.session.add(order)
            self.session.commit()
        except IntegrityError as e:
            self.session.rollback()
            raise DuplicateOrder(order.reference) from e
        except SQLAlchemyError:
            self.session.rollback()
            raise
        return order

    def by_reference(self, reference: str) -> Order | None:
        return self.session.scalars(select(Order).where(Order.reference == reference)).one_or_none()

    def count_open(self) -> int:
        try:
            return self.session.scalar(
                select(func.count()).select_from(Order).where(Order.status == OrderStatus.OPEN)
            )
        except OperationalError as e:
            logger.warning("open order count unavailable: {}", e)
            return 0

    def total_revenue(self, since: datetime) -> Decimal:
        try:
            total = self.session.scalar(
                select(func.coalesce(func.sum(Order.total), 0)).where(Order.paid_at >= since)
            )
        except Exception:
            logger.exception("revenue query failed")
            total = 0
        return Decimal(total)

    def bulk_upsert(self, rows: list[dict]) -> int:
        written = 0
        for row in rows:
            try:
                with self.session.begin_nested():
                    self.session.merge(Order(**row))
                written += 1
            except Exception as e:
                logger.warning("skipping order row {}: {}", row.get("reference"), e)
        self.session.commit()
        return written

    def archive_before(self, cutoff: datetime) -> None:
        try:
            ids = select(Order.id).where(Order.closed_at < cutoff)
            self.session.execute(insert(ArchivedOrder).from_select(["id", "payload"], select(Order.id, Order.payload).where(Order.id.in_(ids))))
            self.session.execute(delete(Order).where(Order.id.in_(ids)))
            self.session.commit()
        except Exception:
            self.session.rollback()
            logger.exception("archiving orders closed before {} failed", cutoff)

    def close(self) -> None:
        try:
            self.session.close()
        except Exception:
            pass
