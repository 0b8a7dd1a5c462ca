"""Handlers' arguments are described for AsyncAPI but not validated per message
(`lhpn_shared.broker.DescribedNotValidated`)."""

from __future__ import annotations

from typing import Any

import pytest
from faststream.rabbit import RabbitBroker, TestRabbitBroker
from faststream.specification import AsyncAPI

from lhpn_shared.broker import DescribedNotValidated, keep_raw_body


def broker() -> RabbitBroker:
    return RabbitBroker(
        decoder=keep_raw_body, serializer=DescribedNotValidated(use_fastdepends_errors=False)
    )


async def test_a_handler_gets_the_body_as_it_came_and_the_asyncapi_document_still_names_it() -> (
    None
):
    rabbit = broker()
    got: list[Any] = []

    @rabbit.subscriber("lhpn.test")
    async def on_message(body: Any) -> None:
        got.append(body)

    async with TestRabbitBroker(rabbit) as test:
        await test.publish(b'{"not": "checked"}', "lhpn.test")
        await test.publish(b"not json at all", "lhpn.test")
    assert got == [b'{"not": "checked"}', b"not json at all"]
    schema = AsyncAPI(rabbit, title="t", version="1").to_specification().to_jsonable()
    assert list(schema["channels"]) == ["lhpn.test:_:OnMessage"]  # built from the model
    assert "OnMessage:Message:Payload" in schema["components"]["schemas"]


async def test_a_handler_whose_message_is_typed_is_refused_when_the_broker_starts() -> None:
    rabbit = broker()

    @rabbit.subscriber("lhpn.test")
    async def on_message(body: str) -> None:  # would get bytes, silently
        raise AssertionError("never called")

    with pytest.raises(TypeError, match="typed"):
        async with TestRabbitBroker(rabbit):
            pass
