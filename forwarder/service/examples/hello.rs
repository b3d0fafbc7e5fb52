//! The smallest service on the SDK: registers `hello` with the local hopd and answers every
//! connection hopd hands over with one HTTP response naming the client and its path.
//!
//! ```sh
//! HOPD_CONTROL_SOCKET=/run/hopd/control.sock cargo run -p hopstack-service --example hello
//! ```

use std::io::{Read, Write};

use hopstack_service::{Error, Listener};

fn main() -> Result<(), Error> {
    let listener = Listener::register("hello")?;
    loop {
        let (mut stream, meta) = listener.accept()?;
        // The request head is not needed to answer; read what has arrived so closing does
        // not reset the connection.
        let mut head = [0u8; 1024];
        let _ = stream.read(&mut head);
        let body = format!("hello {} by way of {:?}\n", meta.client, meta.path);
        let _ = write!(
            stream,
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
    }
}
