"""The one way thumbor-py builds a boto3 S3 client (loaders and result storages alike)."""

from __future__ import annotations

from typing import Any, Literal

import boto3
from botocore.config import Config as BotoConfig


def s3_client(
    *,
    endpoint_url: str | None,
    region: str | None,
    access_key_id: str | None,
    secret_access_key: str | None,
    profile: str | None = None,
    max_pool_connections: int,
    connect_timeout: float,
    read_timeout: float,
    max_attempts: int,
    addressing_style: Literal["auto", "virtual", "path"] = "auto",
) -> Any:
    """A client for S3 or an S3-compatible store (Spaces, MinIO).

    Credentials left out come from boto3's standard chain. Building it reads config files:
    call it off the event loop, once per process.
    """
    session = boto3.session.Session(
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key,
        region_name=region,
        profile_name=profile,
    )
    config = BotoConfig(
        max_pool_connections=max_pool_connections,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        retries={"max_attempts": max_attempts, "mode": "standard"},
        s3={"addressing_style": addressing_style},
        user_agent_extra="thumbor-py",
    )
    return session.client("s3", endpoint_url=endpoint_url, config=config)
