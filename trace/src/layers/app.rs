//! Layer checks for the application protocols that are not HTTP: `mqtt` (a CONNECT, and the
//! broker's CONNACK) and `coap` (a CoAP ping: an empty Confirmable message, answered by a
//! Reset). Each asks the service the smallest question its protocol has that only a live
//! server of that protocol answers, so a row that passes means the service speaks it, not
//! only that something accepted the connection.
//!
//! The packets come from codecs (`mqttbytes`, `coap-lite`), not hand-written bytes.

use std::time::{Duration, Instant};

use bytes::BytesMut;
use coap_lite::{MessageClass, MessageType, Packet as CoapPacket};
use mqttbytes::v4::{self, ConnectReturnCode};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::UdpSocket;

use super::{ms, problem, row};
use crate::model::{CoapInfo, LayerRow, MqttInfo, Status};

/// The client identifier of hoptrace's CONNECT: brokers log it, so it says who asked.
const MQTT_CLIENT_ID: &str = "hoptrace";
/// A CONNACK is 4 octets; more than this before one is complete is not an MQTT broker.
const MQTT_MAX_PACKET: usize = 1024;

/// The `mqtt` row: MQTT 3.1.1 CONNECT (clean session, keep-alive 10 s), then the CONNACK's
/// return code; a DISCONNECT after an accepted one, so the broker logs a clean goodbye.
pub(super) async fn mqtt_check<IO>(mut io: IO, t0: Instant, timeout: Duration) -> LayerRow
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let mut r = row("mqtt");
    r.start_ms = Some(ms(t0.elapsed()));
    let start = Instant::now();
    let res = tokio::time::timeout(timeout, mqtt_connect(&mut io)).await;
    let took = start.elapsed();
    match res {
        Err(_) => {
            r.rtt.add(None);
            r.status = Status::Failed;
            r.detail = format!("no CONNACK within {timeout:?}");
            r.problem = problem(
                "mqtt",
                "mqtt-timeout",
                format!("the service sent no MQTT CONNACK within {timeout:?} of the CONNECT"),
            );
        }
        Ok(Err(why)) => {
            r.rtt.add(None);
            r.status = Status::Failed;
            r.detail = why.clone();
            r.problem = problem("mqtt", "mqtt-protocol", why);
        }
        Ok(Ok((code, session_present))) => {
            r.rtt.add(Some(ms(took)));
            let name = return_code_name(code);
            r.mqtt = Some(MqttInfo {
                return_code: code as u8,
                accepted: code == ConnectReturnCode::Success,
                session_present,
            });
            r.detail = format!(
                "CONNECT -> CONNACK {} ({name}), after {:.2} ms",
                code as u8,
                ms(took)
            );
            if code == ConnectReturnCode::Success {
                r.status = Status::Ok;
                let mut buf = BytesMut::new();
                if v4::Disconnect.write(&mut buf).is_ok() {
                    let _ = io.write_all(&buf).await;
                }
            } else {
                r.status = Status::Failed;
                r.problem = problem(
                    "mqtt",
                    "mqtt-refused",
                    format!(
                        "the broker refused hoptrace's CONNECT: return code {} ({name})",
                        code as u8
                    ),
                );
            }
        }
    }
    let _ = io.shutdown().await;
    r
}

/// Sends the CONNECT and reads until one whole packet came: the CONNACK's code and its
/// session-present flag, or what was wrong.
async fn mqtt_connect<IO>(io: &mut IO) -> Result<(ConnectReturnCode, bool), String>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let mut connect = v4::Connect::new(MQTT_CLIENT_ID);
    connect.keep_alive = 10;
    connect.clean_session = true;
    let mut out = BytesMut::new();
    connect
        .write(&mut out)
        .map_err(|e| format!("encoding the CONNECT: {e:?}"))?;
    io.write_all(&out)
        .await
        .map_err(|e| format!("sending the CONNECT: {e}"))?;
    let mut inbuf = BytesMut::with_capacity(64);
    loop {
        match v4::read(&mut inbuf, MQTT_MAX_PACKET) {
            Ok(v4::Packet::ConnAck(ack)) => return Ok((ack.code, ack.session_present)),
            Ok(other) => return Err(format!("expected a CONNACK, got {other:?}")),
            Err(mqttbytes::Error::InsufficientBytes(_)) => {}
            Err(e) => return Err(format!("not an MQTT CONNACK: {e:?}")),
        }
        if inbuf.len() > MQTT_MAX_PACKET {
            return Err(format!(
                "more than {MQTT_MAX_PACKET} octets without a whole MQTT packet"
            ));
        }
        let n = io
            .read_buf(&mut inbuf)
            .await
            .map_err(|e| format!("reading the CONNACK: {e}"))?;
        if n == 0 {
            return Err(if inbuf.is_empty() {
                "the service closed the connection without a CONNACK".to_owned()
            } else {
                format!(
                    "the service closed the connection after {} octets that are not a CONNACK",
                    inbuf.len()
                )
            });
        }
    }
}

/// MQTT 3.1.1's names for the CONNACK return codes (section 3.2.2.3).
fn return_code_name(code: ConnectReturnCode) -> &'static str {
    match code {
        ConnectReturnCode::Success => "accepted",
        ConnectReturnCode::RefusedProtocolVersion => "unacceptable protocol version",
        ConnectReturnCode::BadClientId => "identifier rejected",
        ConnectReturnCode::ServiceUnavailable => "server unavailable",
        ConnectReturnCode::BadUserNamePassword => "bad user name or password",
        ConnectReturnCode::NotAuthorized => "not authorized",
    }
}

/// How often the CoAP ping is sent before the row fails: RFC 7252's retransmission
/// (section 4.2) shortened to what a diagnostic waits for.
const COAP_TRIES: u32 = 2;

/// The `coap` row: a CoAP ping (RFC 7252, section 4.3: an empty Confirmable message) over
/// `sock`, connected to the final hop with the SRH; a CoAP endpoint answers it with a Reset
/// of the same Message ID.
pub(super) async fn coap_check(
    sock: &UdpSocket,
    message_id: u16,
    t0: Instant,
    timeout: Duration,
) -> LayerRow {
    let mut r = row("coap");
    r.start_ms = Some(ms(t0.elapsed()));
    let mut ping = CoapPacket::new();
    ping.header.set_type(MessageType::Confirmable);
    ping.header.code = MessageClass::Empty;
    ping.header.message_id = message_id;
    let bytes = match ping.to_bytes() {
        Ok(b) => b,
        Err(e) => {
            r.status = Status::Failed;
            r.problem = problem("coap", "encode", format!("encoding the CoAP ping: {e}"));
            return r;
        }
    };
    let per_try = timeout / COAP_TRIES;
    let start = Instant::now();
    let mut buf = vec![0u8; 2048];
    let mut last_error = None;
    for _ in 0..COAP_TRIES {
        if let Err(e) = sock.send(&bytes).await {
            last_error = Some(format!("sending the CoAP ping: {e}"));
            break;
        }
        let deadline = tokio::time::Instant::now() + per_try;
        // Datagrams that are not the answer (a late reply to something else) are skipped
        // until this try's time is up.
        loop {
            let got = tokio::time::timeout_at(deadline, sock.recv(&mut buf)).await;
            let n = match got {
                Err(_) => break,
                Ok(Err(e)) => {
                    last_error = Some(format!("receiving the CoAP answer: {e}"));
                    break;
                }
                Ok(Ok(n)) => n,
            };
            let Ok(answer) = CoapPacket::from_bytes(&buf[..n]) else {
                last_error = Some(format!("{n} octets came back that are not a CoAP message"));
                continue;
            };
            if answer.header.message_id != message_id {
                continue;
            }
            let took = start.elapsed();
            let kind = answer.header.get_type();
            r.rtt.add(Some(ms(took)));
            r.coap = Some(CoapInfo {
                answer: coap_type_name(kind).to_owned(),
                message_id,
            });
            r.detail = format!(
                "ping (empty CON, message id {message_id}) -> {}, after {:.2} ms",
                coap_type_name(kind),
                ms(took)
            );
            if kind == MessageType::Reset {
                r.status = Status::Ok;
            } else {
                r.status = Status::Failed;
                r.problem = problem(
                    "coap",
                    "coap-protocol",
                    format!(
                        "the service answered the CoAP ping with {} instead of RST",
                        coap_type_name(kind)
                    ),
                );
            }
            return r;
        }
        if last_error
            .as_deref()
            .is_some_and(|e| e.starts_with("receiving"))
        {
            break;
        }
    }
    r.rtt.add(None);
    r.status = Status::Failed;
    let text = last_error.unwrap_or_else(|| {
        format!(
            "no answer to {COAP_TRIES} CoAP pings within {:?} each",
            per_try
        )
    });
    r.detail = text.clone();
    r.problem = problem("coap", "coap-timeout", text);
    r
}

fn coap_type_name(t: MessageType) -> &'static str {
    match t {
        MessageType::Confirmable => "CON",
        MessageType::NonConfirmable => "NON",
        MessageType::Acknowledgement => "ACK",
        MessageType::Reset => "RST",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A broker that answers CONNACK with `code`, over an in-memory pipe.
    async fn against_broker(code: u8) -> LayerRow {
        let (client, mut server) = tokio::io::duplex(1024);
        let broker = tokio::spawn(async move {
            let mut buf = BytesMut::new();
            loop {
                match v4::read(&mut buf, 1024) {
                    Ok(v4::Packet::Connect(c)) => {
                        assert_eq!(c.client_id, MQTT_CLIENT_ID);
                        break;
                    }
                    Err(mqttbytes::Error::InsufficientBytes(_)) => {}
                    other => panic!("{other:?}"),
                }
                server.read_buf(&mut buf).await.unwrap();
            }
            server.write_all(&[0x20, 0x02, 0x00, code]).await.unwrap();
            let mut rest = Vec::new();
            let _ = server.read_to_end(&mut rest).await;
            rest
        });
        let r = mqtt_check(client, Instant::now(), Duration::from_secs(2)).await;
        let rest = broker.await.unwrap();
        if code == 0 {
            // A DISCONNECT after an accepted CONNECT.
            assert_eq!(rest, [0xe0, 0x00]);
        }
        r
    }

    #[tokio::test]
    async fn mqtt_row_reads_the_connack_return_code() {
        let ok = against_broker(0).await;
        assert_eq!(ok.status, Status::Ok, "{ok:?}");
        assert!(ok.mqtt.as_ref().unwrap().accepted);
        let refused = against_broker(5).await;
        assert_eq!(refused.status, Status::Failed);
        let p = refused.problem.unwrap();
        assert_eq!(p.reason, "mqtt-refused");
        assert!(
            p.text.contains("return code 5 (not authorized)"),
            "{}",
            p.text
        );
    }

    #[tokio::test]
    async fn mqtt_row_fails_on_a_service_that_is_not_a_broker() {
        let (client, mut server) = tokio::io::duplex(1024);
        tokio::spawn(async move {
            let mut b = [0u8; 64];
            let _ = server.read(&mut b).await;
            let _ = server.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
        });
        let r = mqtt_check(client, Instant::now(), Duration::from_secs(2)).await;
        assert_eq!(r.status, Status::Failed);
        assert_eq!(r.problem.unwrap().reason, "mqtt-protocol");
    }

    #[tokio::test]
    async fn coap_row_wants_a_reset_for_its_ping() {
        let server = UdpSocket::bind("[::1]:0").await.unwrap();
        let client = UdpSocket::bind("[::1]:0").await.unwrap();
        client.connect(server.local_addr().unwrap()).await.unwrap();
        tokio::spawn(async move {
            let mut b = [0u8; 64];
            let (n, from) = server.recv_from(&mut b).await.unwrap();
            let ping = CoapPacket::from_bytes(&b[..n]).unwrap();
            assert_eq!(ping.header.get_type(), MessageType::Confirmable);
            assert_eq!(ping.header.code, MessageClass::Empty);
            // Something else first: skipped.
            server.send_to(b"junk", from).await.unwrap();
            let mut rst = CoapPacket::new();
            rst.header.set_type(MessageType::Reset);
            rst.header.message_id = ping.header.message_id;
            server
                .send_to(&rst.to_bytes().unwrap(), from)
                .await
                .unwrap();
        });
        let r = coap_check(&client, 4711, Instant::now(), Duration::from_secs(2)).await;
        assert_eq!(r.status, Status::Ok, "{r:?}");
        assert_eq!(r.coap.unwrap().answer, "RST");
    }

    #[tokio::test]
    async fn coap_row_times_out_without_an_answer() {
        let server = UdpSocket::bind("[::1]:0").await.unwrap();
        let client = UdpSocket::bind("[::1]:0").await.unwrap();
        client.connect(server.local_addr().unwrap()).await.unwrap();
        let r = coap_check(&client, 1, Instant::now(), Duration::from_millis(200)).await;
        assert_eq!(r.status, Status::Failed);
        assert_eq!(r.problem.unwrap().reason, "coap-timeout");
        drop(server);
    }
}
