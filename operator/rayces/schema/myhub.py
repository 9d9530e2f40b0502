"""The MyHub tables the booking platform grew from: users, posts and likes.

They were created by Rails (`bigserial` keys, timestamps without a database default) and later
made tenant-owned; the models keep those origins visible instead of pretending the tables were
born here.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from sqlalchemy import BigInteger, CheckConstraint, Index, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from rayces.schema.base import (
    Base,
    BaselineCreatedUpdatedAt,
    SerialKey,
    TenantOwned,
    tenant_foreign_key,
    tenant_join,
    tenant_unique_key,
)
from rayces.schema.states import UserRole, check_in

if TYPE_CHECKING:
    from rayces.schema.access import RoleAssignment
    from rayces.schema.appointments import Appointment
    from rayces.schema.credits import CreditBalance, CreditTransaction
    from rayces.schema.organizations import Organization
    from rayces.schema.people import Professional, Student


class User(SerialKey, TenantOwned, BaselineCreatedUpdatedAt, Base):
    """A person who signs in: client, guardian, professional, staff or admin of one tenant."""

    __tablename__ = "users"
    __table_args__ = (
        tenant_unique_key(),
        # E-mail is unique per tenant; several rows may have none (MyHub's OAuth-only users).
        Index("index_users_on_organization_id_and_email", "organization_id", "email", unique=True),
        Index("index_users_on_reset_password_token", "reset_password_token", unique=True),
        Index("index_users_on_jti", "jti", unique=True),
        Index("index_users_on_organization_id_and_role", "organization_id", "role"),
        CheckConstraint(check_in("role", UserRole), name="role"),
    )

    # MyHub's profile columns, all nullable as Rails created them.
    name: Mapped[str | None]
    email: Mapped[str | None]
    image: Mapped[str | None]
    username: Mapped[str | None]
    uid: Mapped[str | None]

    # Devise: database_authenticatable, recoverable, rememberable.
    encrypted_password: Mapped[str] = mapped_column(server_default="")
    reset_password_token: Mapped[str | None]
    reset_password_sent_at: Mapped[dt.datetime | None]
    remember_created_at: Mapped[dt.datetime | None]

    # The JWT id (devise-jwt's JTIMatcher): changing it revokes every token issued before.
    jti: Mapped[str] = mapped_column(server_default=text("(gen_random_uuid())::text"))

    first_name: Mapped[str | None]
    last_name: Mapped[str | None]
    phone: Mapped[str | None]
    role: Mapped[str] = mapped_column(server_default=UserRole.CLIENT.value)

    organization: Mapped[Organization] = relationship(back_populates="users")
    likes: Mapped[list[Like]] = relationship(
        primaryjoin=tenant_join("User", "Like", "user_id"), back_populates="user"
    )
    professional: Mapped[Professional | None] = relationship(
        primaryjoin=tenant_join("User", "Professional", "user_id"), back_populates="user"
    )
    guarded_students: Mapped[list[Student]] = relationship(
        primaryjoin=tenant_join("User", "Student", "guardian_id"), back_populates="guardian"
    )
    client_appointments: Mapped[list[Appointment]] = relationship(
        primaryjoin=tenant_join("User", "Appointment", "client_id"), back_populates="client"
    )
    role_assignments: Mapped[list[RoleAssignment]] = relationship(
        primaryjoin=tenant_join("User", "RoleAssignment", "user_id"),
        back_populates="user",
        # The database deletes them with their user (ON DELETE CASCADE).
        passive_deletes=True,
    )
    credit_balance: Mapped[CreditBalance | None] = relationship(
        primaryjoin=tenant_join("User", "CreditBalance", "user_id"), back_populates="user"
    )
    credit_transactions: Mapped[list[CreditTransaction]] = relationship(
        primaryjoin=tenant_join("User", "CreditTransaction", "user_id"), back_populates="user"
    )


class Post(SerialKey, TenantOwned, BaselineCreatedUpdatedAt, Base):
    """A MyHub post (an imported media item)."""

    __tablename__ = "posts"
    __table_args__ = (tenant_unique_key(),)

    post_id: Mapped[str | None]
    hash_id: Mapped[str | None]
    source: Mapped[str | None]
    # `metadata` is taken by the declarative base, hence the attribute's trailing underscore.
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata")
    filename: Mapped[str | None]

    organization: Mapped[Organization] = relationship(back_populates="posts")
    likes: Mapped[list[Like]] = relationship(
        primaryjoin=tenant_join("Post", "Like", "post_id"), back_populates="post"
    )


class Like(SerialKey, TenantOwned, BaselineCreatedUpdatedAt, Base):
    """A user's like of a post; both belong to the like's organization."""

    __tablename__ = "likes"
    __table_args__ = (
        tenant_foreign_key("user_id", "users"),
        tenant_foreign_key("post_id", "posts"),
        Index("index_likes_on_organization_id_and_user_id", "organization_id", "user_id"),
        Index("index_likes_on_organization_id_and_post_id", "organization_id", "post_id"),
    )

    user_id: Mapped[int] = mapped_column(BigInteger)
    post_id: Mapped[int] = mapped_column(BigInteger)

    organization: Mapped[Organization] = relationship(back_populates="likes")
    user: Mapped[User] = relationship(
        primaryjoin=tenant_join("User", "Like", "user_id"), back_populates="likes"
    )
    post: Mapped[Post] = relationship(
        primaryjoin=tenant_join("Post", "Like", "post_id"), back_populates="likes"
    )
