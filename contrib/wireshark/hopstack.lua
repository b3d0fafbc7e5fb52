-- hopstack.lua: a Wireshark/tshark dissector for hopstack's wire format (docs/wire-format.md).
--
-- Decodes
--   * inside an IPv6 Segment Routing Header (routing type 4), the TLVs Wireshark leaves
--     undecoded: 124 layer descriptor (layers, service), 125 hop names (segment index and
--     name per entry, as many TLVs as there are), 252 trace (report address, port, nonce,
--     and the records hops filled: segment index, status, end function, timestamp, node id),
--     5 HMAC, PadN and unknown types;
--   * UDP payloads starting with "HOPS": stack reports (error report body) and probe answers
--     (path, service status and mode, text, returned trace, direct port).
--
-- Install (Wireshark and tshark load it at start):
--     mkdir -p ~/.local/lib/wireshark/plugins && cp contrib/wireshark/hopstack.lua ~/.local/lib/wireshark/plugins/
-- or for one run:
--     tshark -X lua_script:contrib/wireshark/hopstack.lua -r capture.pcap -V
-- Filter with the fields below, e.g. `hopstack.service == "restapiv3"`, `hopstack.report.kind == 1`.
--
-- Why a postdissector for the SRH: Wireshark's IPv6 dissector owns the routing header (its
-- `ipv6.routing.type` table passes the C dissector private data a Lua dissector cannot
-- forward), so replacing it would lose Wireshark's own `ipv6.routing.srh.*` fields. Instead,
-- after every other dissector ran, this script takes each routing header Wireshark found
-- (the `ipv6.routing` field, which spans the whole header, also inside ICMPv6 quotes) and
-- walks its TLV area itself. That needs nothing from Wireshark but the header's bytes, so it
-- works the same on every version that has Lua.
--
-- Written for Wireshark 3.6 to 4.x (Lua 5.2+); tested with Debian's tshark 4.0.

local hopstack = Proto("hopstack", "hopstack (stack address TLVs and stack reports)")

-- Code tables, from encoder/src/layer.rs and encoder/src/wire/report/codes.rs.
local LAYERS = {
    [1] = "tcp", [2] = "udp", [3] = "tls", [4] = "dtls", [5] = "quic", [6] = "http", [7] = "h2",
    [8] = "h3", [9] = "ws", [10] = "coap", [11] = "mqtt", [12] = "dns", [13] = "raw",
}
local REPORT_LAYERS = { [0x80] = "route", [0x81] = "service" }
for code, name in pairs(LAYERS) do
    REPORT_LAYERS[code] = name
end
local REASONS = {
    [0x0001] = "internal-error", [0x0002] = "rate-limited",
    [0x0101] = "nxdomain", [0x0102] = "servfail", [0x0103] = "dns-timeout", [0x0104] = "no-aaaa",
    [0x0201] = "hop-limit-exceeded", [0x0202] = "bad-srh",
    [0x0203] = "segments-left-exceeds-last-entry", [0x0204] = "policy-denied",
    [0x0205] = "hmac-invalid", [0x0206] = "loop-detected", [0x0207] = "unreachable",
    [0x0208] = "seg6-disabled", [0x0209] = "no-hop-name",
    [0x020a] = "hmac-required",
    [0x0301] = "unknown-service", [0x0302] = "service-down", [0x0303] = "layer-mismatch",
    [0x0401] = "tls-failure", [0x0402] = "connection-refused", [0x0403] = "connection-timeout",
    [0x0404] = "protocol-error",
}
local TRACE_STATUS = { [0] = "empty", [1] = "forwarded", [2] = "bound", [3] = "delivered" }
local SERVICE_STATUS = { [1] = "exists", [2] = "unknown", [3] = "down", [4] = "layer-mismatch" }
local SERVICE_MODE = {
    [0] = "not said", [1] = "handoff", [2] = "proxy-unix", [3] = "proxy-tcp", [4] = "terminate-tls",
}
local REPORT_KINDS = { [1] = "error report", [2] = "probe answer" }
local TLV_TYPES = {
    [0] = "Pad1", [4] = "PadN", [5] = "HMAC", [124] = "Layer descriptor", [125] = "Hop names",
    [252] = "Trace",
}

local TLV_PAD1, TLV_PADN, TLV_HMAC = 0, 4, 5
local TLV_LAYERS, TLV_HOP_NAMES, TLV_TRACE = 124, 125, 252
local SRH_FLAG_O = 0x20
local TRACE_HEADER_LEN, TRACE_RECORD_LEN = 24, 12
local REPORT_HEADER_LEN = 28

local f = hopstack.fields
-- SRH TLVs
f.tlv_type = ProtoField.uint8("hopstack.tlv.type", "Type", base.DEC, TLV_TYPES)
f.tlv_length = ProtoField.uint8("hopstack.tlv.length", "Length", base.DEC)
f.tlv_data = ProtoField.bytes("hopstack.tlv.data", "Data")
f.address = ProtoField.string("hopstack.address", "Stack address (as the SRH carries it)")
f.layers_version = ProtoField.uint8("hopstack.layers.version", "Version", base.DEC)
f.layers_flags = ProtoField.uint8("hopstack.layers.flags", "Flags", base.HEX)
f.layers_count = ProtoField.uint8("hopstack.layers.count", "Layer count", base.DEC)
f.layer = ProtoField.uint8("hopstack.layer", "Layer", base.DEC, LAYERS)
f.layers = ProtoField.string("hopstack.layers", "Layers")
f.service_length = ProtoField.uint8("hopstack.service.length", "Service length", base.DEC)
f.service = ProtoField.string("hopstack.service", "Service")
f.hop_name_index = ProtoField.uint8("hopstack.hop_name.segment_index", "Segment index", base.DEC)
f.hop_name_length = ProtoField.uint8("hopstack.hop_name.length", "Name length", base.DEC)
f.hop_name = ProtoField.string("hopstack.hop_name", "Hop name")
f.trace_version = ProtoField.uint8("hopstack.trace.version", "Version", base.DEC)
f.trace_flags = ProtoField.uint8("hopstack.trace.flags", "Flags", base.HEX)
f.trace_overflow = ProtoField.bool("hopstack.trace.overflow", "Overflow (hops are missing)", 8,
    nil, 0x80)
f.trace_report_port = ProtoField.uint16("hopstack.trace.report_port", "Report port", base.DEC)
f.trace_nonce = ProtoField.uint32("hopstack.trace.nonce", "Nonce", base.HEX)
f.trace_report_address = ProtoField.ipv6("hopstack.trace.report_address", "Report address")
f.trace_records = ProtoField.uint8("hopstack.trace.records", "Records", base.DEC)
f.trace_record = ProtoField.bytes("hopstack.trace.record", "Record")
f.trace_segment_index = ProtoField.uint8("hopstack.trace.segment_index", "Segment index",
    base.DEC)
f.trace_status = ProtoField.uint8("hopstack.trace.status", "Status", base.DEC, TRACE_STATUS)
f.trace_end_function = ProtoField.uint16("hopstack.trace.end_function",
    "End function (kernel fast path)", base.HEX)
f.trace_kernel_end_sid = ProtoField.ipv6("hopstack.trace.kernel_end_sid", "Kernel End SID")
f.trace_timestamp = ProtoField.uint32("hopstack.trace.timestamp",
    "Timestamp (microseconds, the hop's clock)", base.DEC)
f.trace_node_id = ProtoField.uint32("hopstack.trace.node_id", "Node ID", base.HEX)
f.hmac_flags = ProtoField.uint16("hopstack.hmac.flags", "D flag and reserved", base.HEX)
f.hmac_key_id = ProtoField.uint32("hopstack.hmac.key_id", "HMAC key ID", base.DEC)
f.hmac_digest = ProtoField.bytes("hopstack.hmac.digest", "HMAC")
-- Stack reports
f.report_magic = ProtoField.string("hopstack.report.magic", "Magic")
f.report_version = ProtoField.uint8("hopstack.report.version", "Version", base.DEC)
f.report_kind = ProtoField.uint8("hopstack.report.kind", "Kind", base.DEC, REPORT_KINDS)
f.report_length = ProtoField.uint16("hopstack.report.length", "Length", base.DEC)
f.report_nonce = ProtoField.uint32("hopstack.report.nonce", "Nonce", base.HEX)
f.report_reporter = ProtoField.ipv6("hopstack.report.reporter", "Reporter")
f.error_hop_index = ProtoField.uint8("hopstack.error.hop_index",
    "Failing hop (0 = first hop)", base.DEC)
f.error_layer = ProtoField.uint8("hopstack.error.layer", "Layer", base.HEX, REPORT_LAYERS)
f.error_reason = ProtoField.uint16("hopstack.error.reason", "Reason", base.HEX, REASONS)
f.error_flags = ProtoField.uint8("hopstack.error.flags", "Flags", base.HEX)
f.error_has_address = ProtoField.bool("hopstack.error.has_address", "Hop address present", 8,
    nil, 0x80)
f.error_name_length = ProtoField.uint8("hopstack.error.name_length", "Name length", base.DEC)
f.error_text_length = ProtoField.uint16("hopstack.error.text_length", "Text length", base.DEC)
f.error_hop_address = ProtoField.ipv6("hopstack.error.hop_address", "Hop address")
f.error_hop_name = ProtoField.string("hopstack.error.hop_name", "Hop name")
f.error_text = ProtoField.string("hopstack.error.text", "Text")
f.answer_status = ProtoField.uint8("hopstack.answer.status", "Service status", base.DEC,
    SERVICE_STATUS)
f.answer_mode = ProtoField.uint8("hopstack.answer.mode", "Service mode", base.DEC, SERVICE_MODE)
f.answer_segment_count = ProtoField.uint8("hopstack.answer.segment_count", "Path entries",
    base.DEC)
f.answer_flags = ProtoField.uint8("hopstack.answer.flags", "Flags", base.HEX)
f.answer_has_direct_port = ProtoField.bool("hopstack.answer.has_direct_port",
    "Direct port present", 8, nil, 0x01)
f.answer_text_length = ProtoField.uint16("hopstack.answer.text_length", "Text length", base.DEC)
f.answer_trace_length = ProtoField.uint16("hopstack.answer.trace_length", "Trace length",
    base.DEC)
f.path_entry = ProtoField.bytes("hopstack.answer.path", "Path entry")
f.path_address = ProtoField.ipv6("hopstack.answer.path.address", "Segment address")
f.path_resolved_by = ProtoField.uint8("hopstack.answer.path.resolved_by",
    "Resolved by (hop index, 255 = the client)", base.DEC)
f.path_name_length = ProtoField.uint8("hopstack.answer.path.name_length", "Name length",
    base.DEC)
f.path_name = ProtoField.string("hopstack.answer.path.name", "Name")
f.answer_text = ProtoField.string("hopstack.answer.text", "Text")
f.answer_direct_port = ProtoField.uint16("hopstack.answer.direct_port", "Direct port", base.DEC)

local malformed = ProtoExpert.new("hopstack.malformed", "Malformed hopstack field",
    expert.group.MALFORMED, expert.severity.ERROR)
hopstack.experts = { malformed }

-- The whole routing header, wherever Wireshark found one (also inside ICMPv6 quotes).
local routing_header = Field.new("ipv6.routing")

local function complain(tree, range, text)
    tree:add_proto_expert_info(malformed, text)
    if range then
        tree:add(range, "[" .. text .. "]")
    end
end

-- An IPv6 address as text from 16 octets (uncompressed groups: valid notation).
local function ipv6_text(range)
    local groups = {}
    for i = 0, 7 do
        groups[#groups + 1] = string.format("%x", range(2 * i, 2):uint())
    end
    return table.concat(groups, ":")
end

-- The trace TLV's value (also what a probe answer carries back). `segment_at(index)` gives the
-- range of the segment a record's Segment Index names, when known, to spell out the kernel
-- End SID a non-zero end function advertises.
local function dissect_trace_value(value, tree, segment_at)
    if value:len() < TRACE_HEADER_LEN then
        complain(tree, value, "trace shorter than its 24-octet header")
        return
    end
    tree:add(f.trace_version, value(0, 1))
    local flags = tree:add(f.trace_flags, value(1, 1))
    flags:add(f.trace_overflow, value(1, 1))
    tree:add(f.trace_report_port, value(2, 2))
    tree:add(f.trace_nonce, value(4, 4))
    tree:add(f.trace_report_address, value(8, 16))
    local record_octets = value:len() - TRACE_HEADER_LEN
    if record_octets % TRACE_RECORD_LEN ~= 0 then
        complain(tree, nil, "trace length is not 24 + 12 * records")
    end
    local count = math.floor(record_octets / TRACE_RECORD_LEN)
    local filled = 0
    tree:add(f.trace_records, value(0, 0), count):set_generated()
    for i = 0, count - 1 do
        local r = value(TRACE_HEADER_LEN + i * TRACE_RECORD_LEN, TRACE_RECORD_LEN)
        local status = r(1, 1):uint()
        local status_name = TRACE_STATUS[status] or ("status " .. status)
        local summary
        if status == 0 then
            summary = string.format("Record %d: empty", i)
        else
            filled = filled + 1
            summary = string.format("Record %d: Segment List[%d], %s, node 0x%08x", i,
                r(0, 1):uint(), status_name, r(8, 4):uint())
        end
        local rt = tree:add(f.trace_record, r)
        rt:set_text(summary)
        rt:add(f.trace_segment_index, r(0, 1))
        rt:add(f.trace_status, r(1, 1))
        local ef = r(2, 2):uint()
        rt:add(f.trace_end_function, r(2, 2))
        local segment = segment_at and segment_at(r(0, 1):uint())
        if ef ~= 0 and segment then
            -- The SID is the segment the hop was reached at with its last 16 bits replaced.
            local sid = ipv6_text(segment):gsub("[^:]+$", string.format("%x", ef))
            rt:add(f.trace_kernel_end_sid, r(2, 2), Address.ipv6(sid)):set_generated()
        end
        rt:add(f.trace_timestamp, r(4, 4))
        rt:add(f.trace_node_id, r(8, 4))
    end
    return count, filled
end

-- One SRH: `rh` is the range of the whole routing header. Returns a summary for the Info
-- column, or nil when the header has no hopstack TLV.
local function dissect_srh(rh, tree)
    local header_len = (rh(1, 1):uint() + 1) * 8
    local last_entry = rh(4, 1):uint()
    local tlv_start = 8 + 16 * (last_entry + 1)
    local available = math.min(header_len, rh:len())
    if tlv_start >= available then
        return nil
    end
    local function segment_at(index)
        if index <= last_entry and 8 + 16 * (index + 1) <= available then
            return rh(8 + 16 * index, 16)
        end
    end

    -- First pass: the TLVs, the hop names (to write the address) and the layer descriptor.
    local tlvs, names, descriptor = {}, {}, nil
    local at = tlv_start
    local hopstack_seen = false
    local overrun = nil
    while at < available do
        local t = rh(at, 1):uint()
        if t == TLV_PAD1 then
            tlvs[#tlvs + 1] = { at = at, type = t, len = -1 }
            at = at + 1
        else
            if at + 2 > available then
                overrun = at
                break
            end
            local len = rh(at + 1, 1):uint()
            if at + 2 + len > available then
                overrun = at
                break
            end
            tlvs[#tlvs + 1] = { at = at, type = t, len = len }
            if t == TLV_LAYERS or t == TLV_HOP_NAMES or t == TLV_TRACE then
                hopstack_seen = true
            end
            if t == TLV_HOP_NAMES then
                local e = 0
                while e + 2 <= len do
                    local n = rh(at + 2 + e + 1, 1):uint()
                    if e + 2 + n > len then
                        break
                    end
                    names[rh(at + 2 + e, 1):uint()] = rh(at + 4 + e, n):string()
                    e = e + 2 + n
                end
            elseif t == TLV_LAYERS and len >= 4 then
                descriptor = at
            end
            at = at + 2 + len
        end
    end
    if not hopstack_seen then
        return nil
    end

    local root = tree:add(hopstack, rh(tlv_start, available - tlv_start),
        "hopstack TLVs of the Segment Routing Header")
    local summary = {}
    local address = nil
    if descriptor then
        local v = rh(descriptor + 2, rh(descriptor + 1, 1):uint())
        local count = v(2, 1):uint()
        if 3 + count + 1 <= v:len() then
            local layers = {}
            for i = 0, count - 1 do
                layers[#layers + 1] = LAYERS[v(3 + i, 1):uint()] or ("layer " .. v(3 + i, 1):uint())
            end
            local service_len = v(3 + count, 1):uint()
            if 4 + count + service_len <= v:len() then
                local service = v(4 + count, service_len):string()
                local hops = {}
                for i = last_entry, 0, -1 do
                    local seg = segment_at(i)
                    if names[i] then
                        hops[#hops + 1] = names[i]
                    elseif seg then
                        hops[#hops + 1] = "[" .. tostring(seg:ipv6()) .. "]"
                    else
                        hops[#hops + 1] = "?"
                    end
                end
                address = table.concat(hops, ">") .. ":" .. table.concat(layers, "+") .. "+" ..
                    service
                summary[#summary + 1] = table.concat(layers, "+") .. "+" .. service
            end
        end
    end
    if address then
        root:add(f.address, rh(tlv_start, available - tlv_start), address):set_generated()
    end

    for _, tlv in ipairs(tlvs) do
        local t, len = tlv.type, tlv.len
        if t == TLV_PAD1 then
            local item = root:add(f.tlv_type, rh(tlv.at, 1))
            item:set_text("Pad1")
        else
            local whole = rh(tlv.at, 2 + len)
            local name = TLV_TYPES[t] or ("Unknown type " .. t)
            local tt = root:add(hopstack, whole, string.format("TLV %s (%d), %d octets", name, t, len))
            tt:add(f.tlv_type, rh(tlv.at, 1))
            tt:add(f.tlv_length, rh(tlv.at + 1, 1))
            local v = len > 0 and rh(tlv.at + 2, len) or nil
            if t == TLV_LAYERS then
                if len < 4 then
                    complain(tt, whole, "layer descriptor shorter than 4 octets")
                else
                    tt:add(f.layers_version, v(0, 1))
                    tt:add(f.layers_flags, v(1, 1))
                    local count = v(2, 1):uint()
                    tt:add(f.layers_count, v(2, 1))
                    if 3 + count + 1 > len then
                        complain(tt, v, "layer count runs past the TLV")
                    else
                        local names_of = {}
                        for i = 0, count - 1 do
                            tt:add(f.layer, v(3 + i, 1))
                            names_of[#names_of + 1] = LAYERS[v(3 + i, 1):uint()] or "?"
                        end
                        tt:add(f.layers, v(3, count), table.concat(names_of, "+")):set_generated()
                        local service_len = v(3 + count, 1):uint()
                        tt:add(f.service_length, v(3 + count, 1))
                        if 4 + count + service_len ~= len then
                            complain(tt, v, "Length is not 4 + layer count + service length")
                        end
                        if 4 + count + service_len <= len and service_len > 0 then
                            local s = v(4 + count, service_len)
                            tt:add(f.service, s)
                            tt:append_text(": " .. table.concat(names_of, "+") .. ", service " ..
                                s:string())
                        end
                    end
                end
            elseif t == TLV_HOP_NAMES then
                local e = 0
                local listed = {}
                while v and e < len do
                    if e + 2 > len then
                        complain(tt, v(e), "hop-names entry header runs past the TLV")
                        break
                    end
                    local index = v(e, 1):uint()
                    local n = v(e + 1, 1):uint()
                    if e + 2 + n > len then
                        complain(tt, v(e), "hop name runs past the TLV")
                        break
                    end
                    local entry = tt:add(hopstack, v(e, 2 + n),
                        string.format("Segment List[%d]: %s", index, v(e + 2, n):string()))
                    entry:add(f.hop_name_index, v(e, 1))
                    entry:add(f.hop_name_length, v(e + 1, 1))
                    if n > 0 then
                        entry:add(f.hop_name, v(e + 2, n))
                    end
                    listed[#listed + 1] = v(e + 2, n):string()
                    e = e + 2 + n
                end
                tt:append_text(": " .. table.concat(listed, ", "))
            elseif t == TLV_TRACE then
                if not v then
                    complain(tt, whole, "empty trace TLV")
                else
                    local count, filled = dissect_trace_value(v, tt, segment_at)
                    if count then
                        tt:append_text(string.format(": %d records, %d filled", count, filled))
                        summary[#summary + 1] = string.format("trace %d/%d", filled, count)
                    end
                end
            elseif t == TLV_HMAC and len >= 6 then
                tt:add(f.hmac_flags, v(0, 2))
                tt:add(f.hmac_key_id, v(2, 4))
                if len > 6 then
                    tt:add(f.hmac_digest, v(6, len - 6))
                end
            elseif v and t ~= TLV_PADN then
                tt:add(f.tlv_data, v)
            end
        end
    end
    if overrun then
        complain(root, rh(overrun, available - overrun),
            string.format("TLV at offset %d runs past the routing header", overrun))
    end
    if math.floor(rh(5, 1):uint() / SRH_FLAG_O) % 2 == 1 then
        summary[#summary + 1] = "probe"
    end
    return table.concat(summary, ", ")
end

-- The postdissector: every routing header of type 4 in the packet.
function hopstack.dissector(tvb, pinfo, tree)
    local found = {}
    for _, fi in ipairs({ routing_header() }) do
        local rh = fi.range
        if rh and rh:len() >= 8 and rh(2, 1):uint() == 4 then
            local summary = dissect_srh(rh, tree)
            if summary then
                found[#found + 1] = summary
            end
        end
    end
    if #found > 0 then
        pinfo.cols.info:append(" [hopstack " .. table.concat(found, "; ") .. "]")
    end
end

-- One stack report, `tvb` being the UDP payload.
local function dissect_report(tvb, pinfo, tree)
    local kind = tvb(5, 1):uint()
    local root = tree:add(hopstack, tvb(), "hopstack stack report")
    root:add(f.report_magic, tvb(0, 4))
    root:add(f.report_version, tvb(4, 1))
    root:add(f.report_kind, tvb(5, 1))
    local length = root:add(f.report_length, tvb(6, 2))
    if tvb(6, 2):uint() ~= tvb:len() then
        length:add_proto_expert_info(malformed,
            "Length differs from the UDP payload's length (" .. tvb:len() .. ")")
    end
    root:add(f.report_nonce, tvb(8, 4))
    root:add(f.report_reporter, tvb(12, 16))
    local body = REPORT_HEADER_LEN
    local info
    local ok, err = pcall(function()
        if kind == 1 then
            root:append_text(": error report")
            local index, layer, reason = tvb(body, 1):uint(), tvb(body + 1, 1):uint(),
                tvb(body + 2, 2):uint()
            root:add(f.error_hop_index, tvb(body, 1))
            root:add(f.error_layer, tvb(body + 1, 1))
            root:add(f.error_reason, tvb(body + 2, 2))
            local flags = root:add(f.error_flags, tvb(body + 4, 1))
            flags:add(f.error_has_address, tvb(body + 4, 1))
            local name_len, text_len = tvb(body + 5, 1):uint(), tvb(body + 6, 2):uint()
            root:add(f.error_name_length, tvb(body + 5, 1))
            root:add(f.error_text_length, tvb(body + 6, 2))
            local at = body + 8
            if tvb(body + 4, 1):uint() >= 0x80 then
                root:add(f.error_hop_address, tvb(at, 16))
                at = at + 16
            end
            local name = ""
            if name_len > 0 then
                root:add(f.error_hop_name, tvb(at, name_len))
                name = " (" .. tvb(at, name_len):string() .. ")"
            end
            at = at + name_len
            if text_len > 0 then
                root:add(f.error_text, tvb(at, text_len))
            end
            info = string.format("Stack report: hop %d%s, layer %s: %s", index, name,
                REPORT_LAYERS[layer] or ("0x" .. string.format("%02x", layer)),
                REASONS[reason] or string.format("reason 0x%04x", reason))
        else
            root:append_text(": probe answer")
            local status, mode = tvb(body, 1):uint(), tvb(body + 1, 1):uint()
            local count = tvb(body + 2, 1):uint()
            root:add(f.answer_status, tvb(body, 1))
            root:add(f.answer_mode, tvb(body + 1, 1))
            root:add(f.answer_segment_count, tvb(body + 2, 1))
            local flags = root:add(f.answer_flags, tvb(body + 3, 1))
            flags:add(f.answer_has_direct_port, tvb(body + 3, 1))
            local text_len, trace_len = tvb(body + 4, 2):uint(), tvb(body + 6, 2):uint()
            root:add(f.answer_text_length, tvb(body + 4, 2))
            root:add(f.answer_trace_length, tvb(body + 6, 2))
            local at = body + 8
            local path = root:add(hopstack, tvb(at, 0), "Path, first hop first")
            local path_len = 0
            local segments = {}
            for i = 0, count - 1 do
                local n = tvb(at + 17, 1):uint()
                local e = path:add(f.path_entry, tvb(at, 18 + n))
                local by = tvb(at + 16, 1):uint()
                -- No name: a literal, or a name the client resolved (the final hop only
                -- learns the names left to hops).
                local name = n > 0 and tvb(at + 18, n):string() or "(no name)"
                e:set_text(string.format("Hop %d: %s, %s, resolved by %s", i, name,
                    tostring(tvb(at, 16):ipv6()), by == 0xff and "client" or ("hop " .. by)))
                e:add(f.path_address, tvb(at, 16))
                e:add(f.path_resolved_by, tvb(at + 16, 1))
                e:add(f.path_name_length, tvb(at + 17, 1))
                if n > 0 then
                    e:add(f.path_name, tvb(at + 18, n))
                end
                segments[i] = tvb(at, 16)
                at = at + 18 + n
                path_len = path_len + 18 + n
            end
            path:set_len(path_len)
            if text_len > 0 then
                root:add(f.answer_text, tvb(at, text_len))
            end
            at = at + text_len
            if trace_len > 0 then
                local tt = root:add(hopstack, tvb(at, trace_len), "Trace (the probe's trace TLV as it arrived)")
                -- Segment Index i was Segments Left at the hop: path entry count - 1 - i.
                dissect_trace_value(tvb(at, trace_len), tt, function(index)
                    return segments[count - 1 - index]
                end)
            end
            at = at + trace_len
            if tvb(body + 3, 1):bitfield(7, 1) == 1 then
                root:add(f.answer_direct_port, tvb(at, 2))
            end
            info = string.format("Probe answer: service %s (%s), %d hops",
                SERVICE_STATUS[status] or ("status " .. status), SERVICE_MODE[mode] or ("mode " .. mode),
                count)
        end
    end)
    if not ok then
        -- A field ran past the datagram: Wireshark raised its bounds error into Lua.
        complain(root, nil, "report truncated: " .. tostring(err))
        info = "Stack report (malformed)"
    end
    pinfo.cols.protocol = "HOPS"
    pinfo.cols.info = info
end

-- "HOPS", version 1, kind 1 or 2: a stack report, whatever the ports.
local function heuristic(tvb, pinfo, tree)
    if tvb:len() < REPORT_HEADER_LEN or tvb(0, 4):string() ~= "HOPS" then
        return false
    end
    local version, kind = tvb(4, 1):uint(), tvb(5, 1):uint()
    if version ~= 1 or (kind ~= 1 and kind ~= 2) then
        return false
    end
    dissect_report(tvb, pinfo, tree)
    return true
end

register_postdissector(hopstack)
hopstack:register_heuristic("udp", heuristic)
