# node_config.py for one Siaga LoRa button. Create it with
#   siaga-gateway --config /etc/siaga/gateway.toml provision-node NODE_ID --kind fire
# which also stores the key in the gateway's keys file. Keep it secret: whoever
# has the key can raise alarms in this button's name.

NODE_ID = 1001  # unique in the regency (32-bit)
KEY = "00112233445566778899aabbccddeeff"  # 16-byte key, hex (example only!)
KIND = "fire"  # "fire" or "sapa" (SAPA: silent, no buzzer)

MODULE = "rylr998"  # "rylr896", "rylr998", "e32" or "e22"
UART_ID = 1
UART_TX = 17
UART_RX = 16
BAUDRATE = 115200  # RYLR998 default; E32 default is 9600
# RYLR settings: the same NETWORK_ID, BAND and PARAMETER as the gateway's module.
MODULE_ADDRESS = 1001
GATEWAY_ADDRESS = 1
NETWORK_ID = 18
BAND = 923000000  # Hz; AS923 (Indonesia: 920-923 MHz)
PARAMETER = "9,7,1,12"  # spreading factor, bandwidth, coding rate, preamble
# E32 in fixed mode: the gateway module's ADDH, ADDL, CHAN. None: transparent mode.
FIXED_TARGET = None

BUTTON_PIN = 4  # to ground; internal pull-up
LED_PIN = 2
TAMPER_PIN = None  # a case switch to ground, or None
BATTERY_PIN = 34  # ADC through a divider, or None
BATTERY_DIVIDER = 2.0

HOLD_MS = 0  # e.g. 1000 for a SAPA button: a bump does not call for help
HEARTBEAT_S = 60
