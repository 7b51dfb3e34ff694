"""Simulcast end to end: headless Chromium publishes 1280x720 with three RID layers (the browser
SDK's ``publish(stream, {simulcast: true})``); aiortc subscribers choose layers and decode
frames of the matching width; a subscriber switches layer without a freeze; the same across
two worker processes, the layers carried by a pipe."""

from __future__ import annotations

import asyncio
import contextlib
import time

import aiohttp
from playwright.async_api import async_playwright
from sfu_support import DecodeErrors, FrameCounter, wait_for
from test_browser import CHROMIUM, CHROMIUM_ARGS, JOIN_JS, harness, run

from mediasrv.client import Client
from mediasrv.cluster.supervisor import Supervisor
from mediasrv.config import ServerConfig

PUBLISH_SIMULCAST_JS = """
async () => {
  const local = await navigator.mediaDevices.getUserMedia(
      {audio: false, video: {width: 1280, height: 720, frameRate: 15}});
  window.local = local;
  return await window.client.publish(local, {simulcast: true});
}
"""
WIDTHS = [320, 640, 1280]
QUALITY_JS = """
async () => {
  const out = [];
  (await window.client.sendPc.getStats()).forEach((s) => {
    if (s.type === 'outbound-rtp' && s.kind === 'video') {
      out.push({rid: s.rid, bytesSent: s.bytesSent, frameWidth: s.frameWidth,
                qualityLimitationReason: s.qualityLimitationReason});
    }
  });
  return out;
}
"""


def test_three_subscribers_decode_the_layer_they_ask_for_then_one_switches() -> None:
    async def body() -> None:
        async with harness() as h:
            publisher = await h.new_peer("publisher")
            await publisher.join(h.http_url, "sim", publish=False)
            published = time.monotonic()
            producers = await publisher.eval(PUBLISH_SIMULCAST_JS)
            assert [p["kind"] for p in producers] in ([], ["video"])  # pending until RTP
            room = h.server.rooms["sim"]

            def top_layer_flowing() -> bool:
                for producer in room.router.producers.values():
                    top = producer.layers.get(2)
                    # flowing: packets in; its keyframes are checked by the decoding below
                    if top is not None and top.packets > 30 and top.bytes > 40_000:
                        return True
                return False

            # bandwidth feedback (REMB, x-google-start-bitrate): the top layer within ~a second
            try:
                await wait_for(top_layer_flowing, 10, "the 1280x720 layer from Chromium")
            except AssertionError:
                limits = await publisher.eval(QUALITY_JS)
                seen = {
                    index: (s.ssrc, s.packets, s.bytes, s.keyframes)
                    for p in room.router.producers.values()
                    for index, s in p.layers.items()
                }
                raise AssertionError(
                    f"no top layer; Chrome's outbound layers: {limits}; server layers: {seen}"
                ) from None
            layers_after = time.monotonic() - published
            assert layers_after < 2.0, f"the top layer took {layers_after:.1f} s"
            print(f"top layer flowing {layers_after:.2f} s after publish")
            url = h.http_url.replace("http://", "ws://") + "/ws"
            clients = [await Client.connect(url, token="t", room="sim") for _ in WIDTHS]
            counters = [FrameCounter(c) for c in clients]
            try:
                await wait_for(lambda: all(c.infos for c in counters), 10, "the tracks")
                for layer, (client, counter) in enumerate(zip(clients, counters, strict=True)):
                    await client.set_preferred_layer(counter.infos[0]["consumerId"], layer)
                with DecodeErrors() as errors:
                    await wait_for(
                        lambda: all(
                            c.last_size is not None and c.last_size[0] == w
                            for c, w in zip(counters, WIDTHS, strict=True)
                        ),
                        15,
                        "each subscriber decoding its layer's width "
                        f"({[c.last_size for c in counters]})",
                    )
                    # subscriber 0 asks for the top layer: the width changes within 2 s,
                    # without a freeze
                    await asyncio.sleep(1.0)
                    switching = counters[0]
                    switching.reset_gaps()
                    asked = time.monotonic()
                    await clients[0].set_preferred_layer(switching.infos[0]["consumerId"], 2)
                    await wait_for(
                        lambda: switching.last_size is not None and switching.last_size[0] == 1280,
                        2,
                        "the switch to 1280",
                    )
                    switched_in = time.monotonic() - asked
                    await asyncio.sleep(1.0)
                assert switched_in < 2.0
                assert switching.max_gap["video"] < 0.5, switching.max_gap
                assert errors.count == 0, f"{errors.count} decoder errors"

                # Chrome's VP8 simulcast layers carry three temporal layers: asking for the
                # base one keeps the picture size and cuts the frame rate to about a quarter
                middle, middle_client = counters[1], clients[1]
                consumer_id = middle.infos[0]["consumerId"]
                before = middle.frames["video"]
                await asyncio.sleep(2.0)
                full_rate = (middle.frames["video"] - before) / 2.0
                with DecodeErrors() as errors:
                    await middle_client.request(
                        "setPreferredLayers", {"consumerId": consumer_id, "temporalLayer": 0}
                    )
                    await asyncio.sleep(0.5)
                    before = middle.frames["video"]
                    await asyncio.sleep(2.0)
                    base_rate = (middle.frames["video"] - before) / 2.0
                stats = await middle_client.stats()
                video = next(c for c in stats["consumers"] if c["kind"] == "video")
                assert video["temporalLayer"] == 0 and video["droppedTemporal"] > 0, video
                assert base_rate < 0.6 * full_rate, (full_rate, base_rate)
                assert middle.last_size is not None and middle.last_size[0] == 640
                assert errors.count == 0, f"{errors.count} decoder errors at the base layer"
            finally:
                for counter in counters:
                    await counter.close()
                for client in clients:
                    await client.close()

    run(body)


OUTBOUND_JS = """
async () => {
  const out = {};
  (await window.client.sendPc.getStats()).forEach((s) => {
    if (s.type === 'outbound-rtp' && s.kind === 'video') out[s.rid] = s.bytesSent;
  });
  return out;
}
"""


def test_a_layer_nobody_receives_is_paused_at_the_publisher_and_resumed_on_demand() -> None:
    async def body() -> None:
        async with harness() as h:
            publisher = await h.new_peer("publisher")
            await publisher.join(h.http_url, "pause", publish=False)
            await publisher.eval(PUBLISH_SIMULCAST_JS)
            room = h.server.rooms["pause"]
            await wait_for(
                lambda: any(len(p.layers) == 3 for p in room.router.producers.values()),
                10,
                "three layers",
            )
            producer = next(iter(room.router.producers.values()))
            url = h.http_url.replace("http://", "ws://") + "/ws"
            client = await Client.connect(url, token="t", room="pause")
            counter = FrameCounter(client)
            try:
                await wait_for(lambda: bool(counter.infos), 10, "the track")
                consumer_id = counter.infos[0]["consumerId"]
                await client.set_preferred_layer(consumer_id, 0)
                # after PAUSE_UNUSED_AFTER (5 s) the server asks Chrome to stop encoding the top
                # two layers: their bytesSent stop growing, and so do their streams
                await wait_for(lambda: producer.layers_active == [True, False, False], 9, "pause")
                await asyncio.sleep(1.0)
                first = await publisher.eval(OUTBOUND_JS)
                top_packets = producer.layers[2].packets
                await asyncio.sleep(1.0)
                second = await publisher.eval(OUTBOUND_JS)
                assert second["f"] == first["f"] and second["h"] == first["h"], (first, second)
                assert second["q"] > first["q"], (first, second)
                assert producer.layers[2].packets == top_packets
                assert counter.last_size is not None and counter.last_size[0] == 320
                # a subscriber wants the top layer again: Chrome resumes it, the switch follows
                asked = time.monotonic()
                await client.set_preferred_layer(consumer_id, 2)
                await wait_for(
                    lambda: counter.last_size is not None and counter.last_size[0] == 1280,
                    5,
                    "the top layer again",
                )
                assert producer.layers_active[2]  # the middle layer nobody wants stays paused
                print(f"top layer back {time.monotonic() - asked:.2f} s after asking")
            finally:
                await counter.close()
                await client.close()

    run(body)


def test_layers_cross_from_one_worker_process_to_subscribers_on_another() -> None:
    """room_spread_at=1 behind the supervisor: Chromium publishes on one worker, the three
    subscribers land on the other; each decodes the width of the layer it asks for, all three
    layers having crossed the pipe between the two processes."""

    admin = "simulcast-admin-token-0123"

    async def body() -> None:
        config = ServerConfig(port=0, processes=2, room_spread_at=1, admin_token=admin,
                              drain_timeout=1.0)  # fmt: skip
        sup = Supervisor(config)
        await sup.start()
        async with contextlib.AsyncExitStack() as stack:
            stack.push_async_callback(sup.close)
            assert sup.http_address is not None
            http_url = f"http://127.0.0.1:{sup.http_address[1]}"
            playwright = await stack.enter_async_context(async_playwright())
            browser = await playwright.chromium.launch(
                executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True, timeout=15_000
            )
            stack.push_async_callback(browser.close)
            page = await browser.new_page()
            await page.goto(http_url + "/healthz")
            joined = await page.evaluate(
                JOIN_JS, {"url": http_url, "room": "wide", "name": "pub", "publish": False}
            )
            await page.evaluate(PUBLISH_SIMULCAST_JS)
            publisher_worker = sup.rooms["wide"]
            url = http_url.replace("http://", "ws://") + "/ws"
            clients = []
            for _ in WIDTHS:
                client = await Client.connect(url, token="t", room="wide")
                stack.push_async_callback(client.close)
                clients.append(client)
            assert len(sup.spans["wide"]) == 2 and sup.rooms["wide"] is not publisher_worker
            counters = [FrameCounter(c) for c in clients]
            for counter in counters:
                stack.push_async_callback(counter.close)
            await wait_for(lambda: all(c.infos for c in counters), 15, "the piped tracks")
            assert all(c.infos[0]["peerId"] == joined["peerId"] for c in counters)
            # each starts on the top layer, as it would on the publisher's own worker
            await wait_for(
                lambda: all(c.last_size is not None and c.last_size[0] == 1280 for c in counters),
                20,
                "the top layer at every subscriber",
            )

            async def what_the_server_saw() -> object:
                headers = {"Authorization": f"Bearer {admin}"}
                async with (
                    aiohttp.ClientSession(headers=headers) as http,
                    http.get(f"{http_url}/admin/rooms/wide") as answer,
                ):
                    return await answer.json()

            with DecodeErrors() as errors:
                for layer, (client, counter) in enumerate(zip(clients, counters, strict=True)):
                    await client.set_preferred_layer(counter.infos[0]["consumerId"], layer)
                try:
                    await wait_for(
                        lambda: all(
                            c.last_size is not None and c.last_size[0] == w
                            for c, w in zip(counters, WIDTHS, strict=True)
                        ),
                        20,
                        "each subscriber decoding its layer's width",
                    )
                except AssertionError as failed:
                    sizes = [c.last_size for c in counters]
                    seen = await what_the_server_saw()
                    raise AssertionError(f"{failed}: {sizes}; {seen}") from None
            assert errors.count == 0, f"{errors.count} decoder errors"

    run(body)
