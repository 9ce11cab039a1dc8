"""MCAP input (a ``.mcap`` file, or the files of a rosbag2 folder with MCAP storage), read with the ``mcap`` library.

In log-time order through the summary index; when the summary is missing (a bag cut short, a recorder killed)
the file is read linearly up to the cut, and :attr:`McapSource.problems` says where it ended. ROS 2 CDR
payloads are decoded with a ``rosbags`` typestore built from the schema stored in the file; protobuf payloads
(Foxglove schemas) with ``mcap-protobuf-support`` from the file's FileDescriptorSet.
"""

from pathlib import Path

from mcap.reader import NonSeekingReader, make_reader
from mcap_protobuf.decoder import DecoderFactory
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from perception.replay.input_message import CDR, InputMessage, SourceError, TopicInfo


class _CdrDecoders:
    """ROS 2 CDR decoding with a ``rosbags`` typestore holding the types of the schemas seen."""

    def __init__(self):
        self.store = get_typestore(Stores.EMPTY)
        self.known = set()

    def decoder(self, msgtype, msgdef):
        if msgtype not in self.known:
            if not msgdef:
                raise SourceError(f"type {msgtype}: the file stores no message definition")
            types = get_types_from_msg(msgdef, msgtype)
            self.store.register({k: v for k, v in types.items() if k not in self.store.fielddefs})
            self.known.add(msgtype)
        store = self.store
        return lambda raw: store.deserialize_cdr(raw, msgtype)


class McapSource:
    """One or more MCAP files read one after another (see the module doc)."""

    def __init__(self, paths, name=None):
        self.paths = [Path(p) for p in paths]
        self.name = name or str(self.paths[0])
        self.problems = []
        self._cdr = _CdrDecoders()
        self._proto = None
        self._decoders = {}  # channel key -> decode function
        self._topics = None
        for p in self.paths:
            if not p.is_file():
                raise SourceError(f"{p}: file not found")
            with open(p, "rb") as f:
                if f.read(8) != b"\x89MCAP0\r\n":
                    raise SourceError(f"{p}: not an MCAP file (bad magic)")

    # ------------------------------------------------------------------ topics
    def topics(self):
        """``{topic: TopicInfo}`` from the summaries (a linear scan of a file without one)."""
        if self._topics is None:
            topics = {}
            for p in self.paths:
                with open(p, "rb") as f:
                    summary = self._summary(make_reader(f), p, note=False)
                    if summary is not None:
                        counts = summary.statistics.channel_message_counts if summary.statistics else {}
                        for cid, ch in summary.channels.items():
                            schema = summary.schemas.get(ch.schema_id)
                            self._add_topic(topics, ch, schema, counts.get(cid))
                        continue
                for schema, ch, _ in self._linear(p, note=False):
                    self._add_topic(topics, ch, schema, 1)
            self._topics = topics
        return self._topics

    @staticmethod
    def _add_topic(topics, channel, schema, count):
        info = topics.get(channel.topic)
        if info is None:
            encoding = CDR if channel.message_encoding == "cdr" else channel.message_encoding
            topics[channel.topic] = TopicInfo(channel.topic, schema.name if schema else "", encoding, count)
        elif count is not None and info.count is not None:
            info.count += count

    def _summary(self, reader, path, note=True):
        try:
            return reader.get_summary()
        except Exception as e:  # noqa: BLE001 - a missing footer raises EndOfFile / McapError / struct.error
            if note:
                self.problems.append(f"{path}: no readable summary ({type(e).__name__}): the file was cut short "
                                     f"or not closed; reading it linearly up to the cut")
            return None

    def _linear(self, path, note=True):
        """Linear read of a file without summary; stops (with a problem line) at a truncated record."""
        n = 0
        with open(path, "rb") as f:
            it = NonSeekingReader(f, record_size_limit=None).iter_messages(log_time_order=False)
            while True:
                try:
                    item = next(it)
                except StopIteration:
                    return
                except Exception as e:  # noqa: BLE001 - a record cut in the middle raises one of many types
                    if note:
                        self.problems.append(f"{path}: truncated or corrupt after {n} messages "
                                             f"({type(e).__name__}: {e}); the rest of the file is lost")
                    return
                n += 1
                yield item

    # ------------------------------------------------------------------ messages
    def _decoder(self, schema, channel):
        key = (channel.id, schema.id if schema else 0, id(schema))
        fn = self._decoders.get(key)
        if fn is None:
            if channel.message_encoding == "cdr":
                fn = self._cdr.decoder(schema.name, schema.data.decode() if schema else "")
            elif channel.message_encoding == "protobuf":
                self._proto = self._proto or DecoderFactory()
                fn = self._proto.decoder_for("protobuf", schema)
                if fn is None:
                    raise SourceError(f"topic {channel.topic}: protobuf schema {schema.name if schema else None} "
                                      f"cannot be decoded")
            else:
                raise SourceError(f"topic {channel.topic}: unsupported message encoding {channel.message_encoding!r}")
            self._decoders[key] = fn
        return fn

    def messages(self, topics=None):
        """Yield :class:`InputMessage` s (log-time order per file; linear order without a summary)."""
        wanted = None if topics is None else set(topics)
        for p in self.paths:
            with open(p, "rb") as f:
                reader = make_reader(f)
                summary = self._summary(reader, p)
                if summary is not None:
                    items = self._indexed(reader, p, wanted)
                else:
                    items = (it for it in self._linear(p) if wanted is None or it[1].topic in wanted)
                for schema, channel, record in items:
                    yield self._input(schema, channel, record)

    def _indexed(self, reader, path, wanted):
        it = reader.iter_messages(topics=None if wanted is None else sorted(wanted), log_time_order=True)
        n = 0
        while True:
            try:
                item = next(it)
            except StopIteration:
                return
            except Exception as e:  # noqa: BLE001 - a corrupt chunk (bad CRC, cut data) in an indexed file
                self.problems.append(f"{path}: corrupt data after {n} messages ({type(e).__name__}: {e}); "
                                     f"the rest of the file is skipped")
                return
            n += 1
            yield item

    def _input(self, schema, channel, record):
        encoding = CDR if channel.message_encoding == "cdr" else channel.message_encoding
        msgtype = schema.name if schema else ""
        msgdef = schema.data.decode() if schema is not None and encoding == CDR else None
        source = self

        def decode(raw, schema=schema, channel=channel):
            return source._decoder(schema, channel)(raw)

        return InputMessage(channel.topic, msgtype, encoding, record.log_time, raw=record.data, msgdef=msgdef,
                            decode=decode)
