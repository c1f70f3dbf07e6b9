# EDSR-baseline architecture at CPU size (8 blocks, 32 channels) for x2 on the built-in photos.
# Trains for 4 minutes on a 2-core CPU. The paper-size model is edsr_x2c64b16_1xb16-300k_div2k.py.
_base_ = ['../_base_/datasets/photos_sr_x2.py', '../_base_/schedules/restoration_cpu.py',
          '../_base_/models/edsr_c32b8_cpu.py']
